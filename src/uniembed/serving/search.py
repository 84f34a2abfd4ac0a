"""The index behind `POST /v1/search`: a `ShardedIndex` plus optional stored metadata per id.

Metadata lives beside the index in `metadata.jsonl` (one `{"id": ..., ...}` object per line, e.g. the
JSONL given to `uniembed encode`), or in a file named with `--metadata`. Ids without a row get `{}`.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from ..jsonl import iter_json_lines

log = logging.getLogger(__name__)
METADATA_FILE = "metadata.jsonl"


def read_metadata(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """id -> metadata object from a JSONL file; every row needs an "id"."""
    table: dict[str, dict[str, Any]] = {}
    for number, row in iter_json_lines(path):
        if not isinstance(row, dict) or "id" not in row:
            raise InputError('each metadata row must be an object with an "id"', path=path, row=number)
        table[str(row.pop("id"))] = row
    return table


def write_metadata(index_dir: str | os.PathLike, rows: dict[str, dict[str, Any]]) -> Path:
    """Store metadata beside an index (read back by the server)."""
    path = Path(index_dir) / METADATA_FILE
    with open(path, "w", encoding="utf-8") as handle:
        for key, value in rows.items():
            handle.write(json.dumps({"id": key, **value}) + "\n")
    return path


class SearchService:
    """Searches a loaded index with query embeddings and attaches stored metadata.

    A multi-vector index (`index.multivector.MultiVectorIndex`) is searched with one query's token matrix and
    `token_k` nearest tokens per query token (`uniembed search`; the server's /v1/search takes single-vector
    indexes only)."""

    def __init__(self, index: Any, metadata: dict[str, dict[str, Any]] | None = None, nprobe: int | None = 32,
                 rescore: int = 0, token_k: int = 64) -> None:
        self.index = index
        self.metadata = metadata or {}
        self.nprobe = nprobe
        self.rescore = rescore  # K: re-rank K x top_k candidates with the index's kept vectors (quantised indexes)
        self.token_k = token_k

    @classmethod
    def load(cls, index_dir: str | os.PathLike, metadata_path: str | os.PathLike | None = None,
             dimension: int | None = None, model_id: str | None = None, nprobe: int | None = 32,
             multi_vector_dimension: int | None = None) -> "SearchService":
        """The index at `index_dir` (single- or multi-vector) with its metadata, checked against the served model:
        `dimension` its vector width, `multi_vector_dimension` its token width (None: a single-vector model)."""
        from ..index.faiss_index import ShardedIndex, index_kind
        from ..index.multivector import MultiVectorIndex
        from ..index.store import MULTI_VECTOR

        if index_kind(index_dir) == MULTI_VECTOR:
            index = MultiVectorIndex(index_dir)
            if not multi_vector_dimension:
                raise ConfigError(f"index '{index_dir}' is a multi-vector index, but the served model is single-vector "
                                  "(no token embeddings): serve the multi-vector model that built it, or a "
                                  "single-vector index")
            dimension = multi_vector_dimension
        else:
            index = ShardedIndex(index_dir)
        if dimension is not None and index.dimension != dimension:
            raise ConfigError(f"index '{index_dir}' holds {index.dimension}-d vectors but the model embeds in "
                              f"{dimension} dimensions; serve the model that built the index")
        if model_id and index.model_id and index.model_id != model_id:
            log.warning("index built with model %s, serving model %s: scores may be meaningless",
                        index.model_id, model_id)
        path = Path(metadata_path) if metadata_path else Path(index_dir) / METADATA_FILE
        metadata = read_metadata(path) if path.exists() else {}
        if metadata_path and not path.exists():
            raise FileNotFoundError(f"metadata file '{path}' not found")
        return cls(index, metadata, nprobe)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def multi_vector(self) -> bool:
        from ..index.multivector import MultiVectorIndex

        return isinstance(self.index, MultiVectorIndex)

    def search(self, vector: np.ndarray, top_k: int) -> list[dict[str, Any]]:
        """The top_k hits of one query: its vector, or its n x D token matrix for a multi-vector index."""
        k = min(top_k, max(1, len(self.index)))
        if self.multi_vector:
            scores, ids = self.index.search([vector], k=k, token_k=self.token_k, nprobe=self.nprobe)
        else:
            scores, ids = self.index.search(np.atleast_2d(vector), k=k, nprobe=self.nprobe, rescore=self.rescore)
        return [{"rank": rank + 1, "id": item_id, "score": float(score), "metadata": self.metadata.get(item_id, {})}
                for rank, (item_id, score) in enumerate(zip(ids[0], scores[0]))]
