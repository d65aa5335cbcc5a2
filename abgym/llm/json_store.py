"""A persistent, multi-process-safe store of JSON values by string key: SQLite in WAL mode, one row per key.

Why: the LLM ranking and rewrite caches were JSON files, rewritten whole (read, merge, atomic replace) on each flush.
Two processes flushing at once each merged what was on disk *before* the other's replace, so one of them erased the
other's new entries (the issue 18 probe lost 2 of 600 with ``flush_every=1``), and a process killed mid-write left a
multi-megabyte temp file that nothing removed. Here each batch is one SQLite transaction (``BEGIN IMMEDIATE``: writers
queue, none overwrites another, a crash keeps all of a batch or none), as in :mod:`abgym.llm.embedding_cache`.

A legacy JSON cache beside the store (same name, ``.json``) is imported once, and the temp files its old writer left
behind (``.<name>.json.*.tmp``, older than :data:`STALE_TEMP_SECONDS`) are removed.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
STALE_TEMP_SECONDS = 600  # an old-style JSON flush takes well under a second; older temp files are orphans


class JsonStore:
    """``path`` (``.sqlite``; a ``.json`` path is read as its ``.sqlite`` sibling, the JSON imported once)."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        self.legacy_json = path if path.suffix == ".json" else path.with_suffix(".json")
        self.path = path.with_suffix(".sqlite")
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._owner_pid: int | None = None
        self._writable = True

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross a fork: reopen in the child.
        if self._connection is None or self._owner_pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists()
            connection = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False, isolation_level=None)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute(_SCHEMA)
            except sqlite3.DatabaseError as error:
                connection.close()
                raise ValueError(f"the cache {self.path} is corrupt ({error}); delete it to rebuild it: "
                                 f"rm '{self.path}'*") from None
            self._connection, self._owner_pid = connection, os.getpid()
            if fresh and self.legacy_json.is_file():
                self._import_legacy_json()
            remove_stale_temp_files(self.legacy_json)
        return self._connection

    def _import_legacy_json(self) -> None:
        try:
            entries = json.loads(self.legacy_json.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"the cache {self.legacy_json} is corrupt ({error}); delete it to rebuild it") from None
        if isinstance(entries, dict):
            self._put(entries.items())

    def load_all(self) -> dict:
        with self._lock:
            rows = self._connect().execute("SELECT key, value FROM entries").fetchall()
        return {key: json.loads(value) for key, value in rows}

    def get(self, key: str):
        """The stored value, or None."""
        with self._lock:
            row = self._connect().execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_many(self, items: Iterable[tuple[str, object]]) -> None:
        """Store entries in one transaction (all or nothing); an entry already there is kept (values are
        deterministic). A read-only store only warns: results stay correct, they are recomputed next time."""
        with self._lock:
            self._connect()
            self._put(items)

    def _put(self, items) -> None:
        rows = [(str(key), json.dumps(value)) for key, value in items]
        if not rows or not self._writable:
            return
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany("INSERT OR IGNORE INTO entries (key, value) VALUES (?, ?)", rows)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as error:
            self._writable = False
            warnings.warn(f"Cannot write the cache {self.path} ({error}); entries will be recomputed next time. "
                          "Set ABGYM_CACHE_DIR to a writable folder.", RuntimeWarning, stacklevel=3)

    def __len__(self) -> int:
        with self._lock:
            return self._connect().execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._owner_pid == os.getpid():
                self._connection.close()
            self._connection = None


def remove_stale_temp_files(path: Path, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete ``.<name>.*.tmp`` beside ``path`` (what :func:`abgym.paths.atomic_write` leaves when killed)."""
    removed, now = [], time.time()
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if now - stale.stat().st_mtime > older_than:
                stale.unlink()
                removed.append(stale)
    return removed
