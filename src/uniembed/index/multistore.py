"""The multi-vector embedding directory: `store.py`'s shard format with ragged items.

Each shard `shard-0000k.npy` is the flat float32 token matrix of its items, one after another (T_k x D, rows
L2-normalised), and its record `shard-0000k.json` keeps "lengths" (tokens per item) beside the usual "ids",
checksum and plan, so item i of the shard is rows offsets[i]:offsets[i+1] with offsets = cumsum([0] + lengths).
manifest.jsonl, metadata.jsonl and the resume rules are the single-vector ones (`store.write_shard`,
`store.verified_record(..., multi_vector=True)`, `store.write_manifest`); `info.json` says
{"kind": "multi_vector", "dimension": D, "model_id": ..., "precision": "float32", "pool_factor": 1} (the stored
tokens are the model's, unpooled float32; `index build` pools them and picks the index precision, both recorded
in index.json), which single-vector readers refuse.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import InputError
from .store import INFO_FILE, MANIFEST, MULTI_VECTOR, open_shards, record_path, write_manifest, write_shard, write_text


def multi_info(dimension: int, model_id: str | None, **extra) -> dict:
    """The info.json of a multi-vector directory."""
    return {"kind": MULTI_VECTOR, "model_id": model_id, "dimension": int(dimension), "precision": "float32",
            "pool_factor": 1, **extra}


def offsets_of(lengths: Sequence[int]) -> np.ndarray:
    """Row offsets (N + 1, int64) of items with these token counts in a flat token matrix."""
    return np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))]).astype(np.int64)


def flatten(items: Sequence[np.ndarray], dimension: int) -> tuple[np.ndarray, list[int]]:
    """(flat T x D float32 token matrix, tokens per item) of ragged items."""
    lengths = [int(len(item)) for item in items]
    for position, item in enumerate(items):
        if np.ndim(item) != 2 or np.shape(item)[1] != dimension:
            raise InputError(f"item {position} has token matrix of shape {np.shape(item)}, expected n x {dimension}")
    flat = np.concatenate([np.asarray(item, np.float32) for item in items]) if sum(lengths) else \
        np.zeros((0, dimension), np.float32)
    return flat, lengths


def write_multi_embeddings(directory: str | os.PathLike, ids: Sequence[str], items: Sequence[np.ndarray],
                           shard_size: int = 100_000, model_id: str | None = None) -> None:
    """Write whole (ids, per-item n_i x D token matrices) in the multi-vector format, as `uniembed encode` does for a
    multi-vector model, into a directory that holds no manifest yet."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / MANIFEST).exists():
        raise InputError("embeddings directory already holds a manifest", path=directory,
                         fix="choose an empty --out directory")
    if len(ids) != len(items) or not items:
        raise InputError(f"{len(ids)} ids for {len(items)} token matrices (need the same number, at least one)")
    dimension = int(np.shape(items[0])[1])
    ids = [str(i) for i in ids]
    records = []
    for k, start in enumerate(range(0, len(ids), shard_size)):
        flat, lengths = flatten(items[start:start + shard_size], dimension)
        records.append(write_shard(directory, k, ids[start:start + shard_size], flat, dimension, lengths=lengths))
    write_manifest(directory, records)
    write_text(directory / INFO_FILE, json.dumps(multi_info(dimension, model_id, count=len(ids), shards=len(records)),
                                                 indent=2) + "\n")


def iter_multi_shards(directory: str | os.PathLike, mmap: bool = True
                      ) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """Yield (ids, flat token matrix, offsets) per shard in shard order; tokens memory-mapped by default."""
    directory = Path(directory)
    for shard, rows, path, tokens in open_shards(
            directory, MULTI_VECTOR,
            "single-vector embeddings are indexed with `uniembed index build` without --pool-factor; encode with "
            "a multi-vector model for a multi-vector index", mmap):
        ids = [row.id for row in rows]
        try:
            record = json.loads(record_path(directory, shard).read_text(encoding="utf-8"))
            lengths = record["lengths"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"the record of multi-vector shard {shard} is missing or has no token counts ({exc})",
                             path=record_path(directory, shard), fix="re-run `uniembed encode`") from exc
        if record.get("ids") != ids or sum(lengths) != len(tokens):
            raise InputError(f"shard {shard} does not match its record ({len(tokens)} token rows, record lists "
                             f"{sum(lengths)} tokens of {len(lengths)} items)", path=path, fix="re-run `uniembed encode`")
        yield ids, tokens, offsets_of(lengths)


def read_multi_embeddings(directory: str | os.PathLike) -> tuple[list[str], list[np.ndarray]]:
    """All ids and per-item token matrices of a multi-vector directory (loads everything into memory)."""
    ids: list[str] = []
    items: list[np.ndarray] = []
    for shard_ids, tokens, offsets in iter_multi_shards(directory, mmap=False):
        ids.extend(shard_ids)
        items.extend(np.asarray(tokens[offsets[i]:offsets[i + 1]], np.float32) for i in range(len(shard_ids)))
    if not ids:
        raise InputError("embeddings directory is empty", path=directory)
    return ids, items
