"""An on-disk embedding cache keyed by model id and item content key (one SQLite file per model).

Rows are committed after every encoded batch, so an interrupted evaluation keeps what it finished and a
later run (or one with more data sets) re-encodes nothing already stored.

Several writers may share one cache (the ranks of a job hand their vectors to rank 0, which writes; several jobs
may run on one cache): the database runs in WAL mode where the filesystem allows it, every write is one
transaction, and a writer that finds the file locked waits (`timeout`) instead of failing. A row is the same for
every writer (same model, same content key), so whichever write lands last loses nothing.
"""
from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np


class EmbeddingCache:
    """`get(keys)` -> {key: vector} for the keys present; `put(keys, vectors)` stores and commits."""

    def __init__(self, directory: str | os.PathLike, model_id: str, timeout: float = 600.0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.model_id = model_id
        self.path = self.directory / f"{_safe_name(model_id)}.sqlite"
        self._db = sqlite3.connect(str(self.path), timeout=timeout, check_same_thread=False)
        try:  # WAL: readers never block the writer; not available on some network filesystems (then: rollback journal)
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            pass
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, dim INTEGER, vector BLOB)")
            self._db.execute("CREATE TABLE IF NOT EXISTS info (name TEXT PRIMARY KEY, value TEXT)")
            self._db.execute("INSERT OR IGNORE INTO info VALUES ('model_id', ?)", (model_id,))

    @property
    def parts_dir(self) -> Path:
        """Where the ranks of a job leave their vectors for rank 0 (beside the database, one folder per model)."""
        return self.path.with_suffix(".parts")

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for key, dim, blob in self._select("key, dim, vector", keys):
            found[key] = np.frombuffer(blob, dtype=np.float32, count=dim)
        return found

    def present(self, keys: Sequence[str]) -> set[str]:
        """The keys among `keys` that are stored (without reading their vectors)."""
        return {row[0] for row in self._select("key", keys)}

    def _select(self, columns: str, keys: Sequence[str]):
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self._db.execute(f"SELECT {columns} FROM embeddings WHERE key IN ({marks})", chunk)

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        rows = [(key, int(vec.shape[0]), vec.tobytes()) for key, vec in zip(keys, vectors)]
        with self._db:  # one transaction; waits for a concurrent writer instead of failing
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self._db.close()


def _safe_name(model_id: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[-60:]
    return f"{readable}-{hashlib.sha256(model_id.encode()).hexdigest()[:12]}"
