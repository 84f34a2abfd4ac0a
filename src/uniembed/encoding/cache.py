"""An on-disk embedding cache keyed by model id and item content key (one SQLite file per model).

Two tables: `embeddings` (one float32 vector per item) and `tokens` (a late-interaction model's float32
token matrix per item, as `Embedder.encode_multi` returns it: n_i x D, before any token pooling, which
evaluation applies afterwards).

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
    """`get(keys)` -> {key: vector} for the keys present; `put(keys, vectors)` stores and commits. The same for
    token matrices: `get_tokens` / `put_tokens`."""

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
            self._db.execute("CREATE TABLE IF NOT EXISTS tokens (key TEXT PRIMARY KEY, rows INTEGER, dim INTEGER, "
                             "matrix BLOB)")
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

    def get_tokens(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """{key: rows x dim float32 token matrix} for the keys whose matrices are stored."""
        return {key: np.frombuffer(bytearray(blob), dtype=np.float32, count=rows * dim).reshape(rows, dim)  # writable
                for key, rows, dim, blob in self._select("key, rows, dim, matrix", keys, table="tokens")}

    def put_tokens(self, keys: Sequence[str], matrices: Sequence[np.ndarray]) -> None:
        """Store one token matrix per key (float32, 2-D) in one transaction."""
        rows = []
        for key, matrix in zip(keys, matrices):
            matrix = np.ascontiguousarray(matrix, dtype=np.float32)
            if matrix.ndim != 2:
                raise ValueError(f"token matrix of {key!r} has shape {matrix.shape}; want (tokens, dim)")
            rows.append((key, int(matrix.shape[0]), int(matrix.shape[1]), matrix.tobytes()))
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?)", rows)

    def _select(self, columns: str, keys: Sequence[str], table: str = "embeddings"):
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self._db.execute(f"SELECT {columns} FROM {table} WHERE key IN ({marks})", chunk)

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
