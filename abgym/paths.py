"""Where abgym keeps its caches, and where it looks for shared data.

The cache folder is ``$ABGYM_CACHE_DIR`` if set, else ``~/.cache/abgym``. Everything written there goes through
:func:`atomic_write`, so that an interrupted run never leaves a half-written cache file behind.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    root = Path(os.environ.get("ABGYM_CACHE_DIR") or Path.home() / ".cache" / "abgym")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the project checkout, if there is one (development and CI)."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file beside ``path`` and rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
