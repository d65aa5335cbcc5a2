"""Checkpoints made of several files, saved and loaded as one unit.

Why: a trained agent is more than one file (an SB3 zip, its observation normaliser, its reward estimator). Each
file is written atomically, but a process killed between two of them leaves a set that mixes two saves, or a new
model beside no normaliser, and a loader that trusts file names pairs them without a word. Here every part is
written first (each through a temp file, fsynced, renamed into place), and the manifest ``<main>.manifest.json``
last: the manifest names every part with its size and SHA-256, so that it is the commit point. :func:`verify`
refuses a set whose manifest is missing (an interrupted first save, or files from elsewhere) or whose parts do not
match it (an interrupted save over an older checkpoint), with :class:`CheckpointError` naming the file and the fix.

A save holds an exclusive lock (``fcntl.flock`` on ``.<main>.lock``), so that it can remove the temp files that an
earlier, killed save of the same checkpoint left behind (``.<part>.*.tmp``) without touching a live writer's.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path

from abgym.paths import atomic_write

MANIFEST_FORMAT = "abgym-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that is incomplete, mixed from two saves, or not one at all; the message says how to fix it."""


def manifest_path(main: str | os.PathLike) -> Path:
    main = Path(main)
    return main.with_name(main.name + ".manifest.json")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _save_lock(main: Path):
    main.parent.mkdir(parents=True, exist_ok=True)
    with open(main.with_name(f".{main.name}.lock"), "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def remove_stale_temp_files(folder: Path, names) -> list[Path]:
    """Delete the temp files :func:`abgym.paths.atomic_write` left for ``names`` in ``folder`` (call under the lock)."""
    removed = []
    for name in names:
        for stale in folder.glob(f".{name}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                removed.append(stale)
    return removed


def write(main: str | os.PathLike, parts: dict[str, bytes], kind: str, metadata: dict | None = None) -> Path:
    """Write ``parts`` (file name in ``main``'s folder -> bytes; ``main``'s own name among them), then the manifest.

    ``kind`` says what wrote it (checked on load); ``metadata`` is stored as is (JSON). Returns ``main``.
    """
    main = Path(main)
    if main.name not in parts:
        raise ValueError(f"the parts of checkpoint {main} must include {main.name!r}")
    for name in parts:
        if Path(name).name != name:
            raise ValueError(f"checkpoint part names are plain file names, got {name!r}")
    manifest = {"format": MANIFEST_FORMAT, "kind": kind, "metadata": metadata or {},
                "parts": {name: {"sha256": _sha256(data), "bytes": len(data)} for name, data in parts.items()}}
    with _save_lock(main):
        remove_stale_temp_files(main.parent, [*parts, manifest_path(main).name])
        for name, data in parts.items():
            with atomic_write(main.with_name(name)) as handle:
                handle.write(data)
        with atomic_write(manifest_path(main), "w") as handle:
            json.dump(manifest, handle, indent=1)
    return main


def read(main: str | os.PathLike, kind: str | None = None, required=(),
         what: str = "a checkpoint saved by abgym") -> tuple[dict, dict[str, bytes]]:
    """Check that the set of files behind ``main`` is the one its manifest names; return the manifest and the parts.

    The parts come back as bytes, read once and verified, so that a loader builds from exactly what was checked.
    ``required``: part names that must be in it (for instance the estimator a caller asked for); ``what`` names
    the expected writer in the error for a file without a manifest.
    """
    main = Path(main)
    if not main.exists():
        raise FileNotFoundError(f"no checkpoint at {main}")
    where = manifest_path(main)
    if not where.is_file():
        raise CheckpointError(
            f"{main} has no manifest ({where.name}): it is not {what} (or one saved before abgym wrote "
            "manifests), or its save was interrupted; save or train it again")
    try:
        manifest = json.loads(where.read_text())
        parts = manifest["parts"]
        if manifest.get("format") != MANIFEST_FORMAT or not isinstance(parts, dict):
            raise KeyError("format")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{where} is not an abgym checkpoint manifest ({error}); save the checkpoint "
                              "again") from error
    if kind is not None and manifest.get("kind") != kind:
        raise CheckpointError(f"{main} is a {manifest.get('kind')!r} checkpoint, not a {kind!r} one")
    for name in [main.name, *required]:
        if name not in parts:
            raise CheckpointError(f"checkpoint {main} has no part {name!r} (its parts: {sorted(parts)}); "
                                  "save it again with that part")
    contents = {}
    for name, expected in parts.items():
        path = main.with_name(name)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {main} is incomplete: {path} is missing; restore it or save again")
        data = path.read_bytes()
        if len(data) != expected.get("bytes") or _sha256(data) != expected.get("sha256"):
            raise CheckpointError(
                f"checkpoint {main} is inconsistent: {path} is not the file its manifest names (another or an "
                "interrupted save changed it), so its parts may come from different saves; save it again")
        contents[name] = data
    return manifest, contents
