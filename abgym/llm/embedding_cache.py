"""A persistent, multi-process-safe store of text embeddings: SQLite in WAL mode, one row per (model, text).

Why SQLite: each batch of new vectors is one transaction, so a crash never leaves half a batch behind (the atomic
write of the cache); WAL mode lets any number of processes read while one writes; and a lookup of 18k keys takes
tens of milliseconds. The key is the SHA-1 of the UTF-8 text; the model is the folder the database lives in.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

_SCHEMA = "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID"
_LOOKUP_CHUNK = 900  # below SQLite's historic limit of 999 bound parameters


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Vectors of one model, ``dim`` float32 values each, stored in ``folder/vectors.sqlite``."""

    def __init__(self, folder: str | os.PathLike, dim: int):
        self.path = Path(folder) / "vectors.sqlite"
        self.dim = dim
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._owner_pid: int | None = None
        self._writable = True

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross a fork (vector environments start subprocesses): reopen in the child.
        if self._connection is None or self._owner_pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False, isolation_level=None)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute(_SCHEMA)
            except sqlite3.DatabaseError as error:
                connection.close()
                raise RuntimeError(
                    f"The embedding cache {self.path} is unreadable ({error}). Delete it to rebuild it: "
                    f"rm '{self.path}'*"
                ) from error
            self._connection, self._owner_pid = connection, os.getpid()
        return self._connection

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The stored vectors of those keys that are in the cache."""
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            connection = self._connect()
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk)
                for key, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.shape == (self.dim,):  # a row of another width is ignored and recomputed
                        found[key] = vector
        return found

    def put_many(self, items: Iterable[tuple[bytes, np.ndarray]]) -> None:
        """Store vectors in one transaction (all or nothing). A read-only cache only warns: results stay correct."""
        rows = [(key, np.ascontiguousarray(vector, dtype=np.float32).tobytes()) for key, vector in items]
        if not rows or not self._writable:
            return
        with self._lock:
            try:
                connection = self._connect()
                connection.execute("BEGIN IMMEDIATE")
                try:
                    connection.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", rows)
                    connection.execute("COMMIT")
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as error:
                self._writable = False
                warnings.warn(
                    f"Cannot write the embedding cache {self.path} ({error}); embeddings will be recomputed next "
                    "time. Set ABGYM_CACHE_DIR to a writable folder.",
                    RuntimeWarning,
                    stacklevel=3,
                )

    def __len__(self) -> int:
        with self._lock:
            return self._connect().execute("SELECT COUNT(*) FROM vectors").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._owner_pid == os.getpid():
                self._connection.close()
            self._connection = None
