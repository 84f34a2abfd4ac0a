"""A multi-vector (late-interaction) index on disk: FAISS candidate generation over token vectors, then exact MaxSim.

Layout of an index directory (one index shard per embeddings shard):
    index.json              {"kind": "multi_vector", "factory", "dimension", "pool_factor", "precision" (of the
                            stored tokens: float32, float16, int8 or binary), "model_id", "count" (items),
                            "tokens", "shards"}
    index-0000k.faiss       a FAISS index over the shard's (pooled) token vectors: inner product (float32,
                            float16 SQfp16, int8 SQ8 on the calibrated grid) or Hamming (binary, packed bits)
    tokens-0000k.npy        the same token vectors, flat (T_k x D; binary: T_k x D/8 packed bits), memory-mapped
                            for re-scoring
    ranges.npy              int8 only: the per-dimension ranges the tokens were quantised on (`quantize.calibrate`)
    offsets-0000k.npy       item i of the shard owns token rows offsets[i]:offsets[i+1] (int64, N_k + 1)
    ids-0000k.json          the shard's item ids
Search, per query (n x D tokens): each query token fetches its `token_k` nearest tokens from every shard; their
items are the candidates; each candidate is scored exactly with `losses.maxsim` over its stored tokens; the top k
are returned (descending score, ties in index order). With `token_k` >= the tokens of every shard every item that
has a token is a candidate, so the ranking is exactly a brute-force MaxSim over the pool (over the stored tokens).
Quantised tokens are scored as stored, against float query tokens: int8 tokens at their step's value
(`quantize.dequantize`), binary tokens as sign vectors scaled to unit length (+-1/sqrt(D), so a score stays a sum
of cosines); the query tokens look up candidates in the same precision (binary: their own signs, by Hamming
distance). Float16 keeps MaxSim within ~1e-3, int8 close, binary is the coarse 32x-smaller store
(benchmarks/results/compact_multivector.md).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ConfigError, InputError
from . import quantize as q
from .faiss_index import (INDEX_META, MULTI_FIX, SINGLE_FIX, IndexDirectory, _faiss, _search, _trained_template,
                          create_index)
from .multistore import offsets_of
from .store import MULTI_VECTOR
from .token_pooling import check_pool_factor, pool_items

PRECISIONS = ("float32", "float16", "int8", "binary")  # of the stored token matrix
DEFAULT_FACTORY = {precision: q.DEFAULT_FACTORY[precision] for precision in PRECISIONS}
SCORE_BATCH = 256  # candidates scored per MaxSim call (bounds the Lq x C x Ld similarity tensor)


@dataclass
class _Shard:
    index_file: str
    tokens_file: str
    offsets_file: str
    ids_file: str
    count: int
    tokens: int


class MultiVectorIndex(IndexDirectory):
    """A multi-vector index directory (see the module docstring), searched with per-query token matrices."""

    def __init__(self, directory: str | os.PathLike) -> None:
        super().__init__(directory, MULTI_VECTOR, SINGLE_FIX, _Shard)
        self._offsets = [np.load(self.directory / s.offsets_file) for s in self.shards]
        self._ranges = q.read_ranges(self.directory) if q.needs_ranges(self.precision) else None

    @property
    def pool_factor(self) -> int:
        return int(self.meta["pool_factor"])

    @property
    def precision(self) -> str:
        return str(self.meta["precision"])

    @property
    def token_count(self) -> int:
        return int(self.meta["tokens"])

    def _shard_index(self, number: int):
        if number not in self._loaded:
            read = _faiss().read_index_binary if q.is_binary(self.precision) else _faiss().read_index
            self._loaded[number] = read(str(self.directory / self.shards[number].index_file))
        return self._loaded[number]

    def _item_tokens(self, number: int, local: np.ndarray) -> list[np.ndarray]:
        """The stored tokens of the shard's items `local`, as float32 rows (a writable copy each)."""
        tokens = np.load(self.directory / self.shards[number].tokens_file, mmap_mode="r")
        offsets = self._offsets[number]
        return [stored_tokens(tokens[offsets[i]:offsets[i + 1]], self.precision, self._ranges, self.dimension)
                for i in local]

    def candidates(self, query: np.ndarray, token_k: int, nprobe: int | None = 32) -> list[np.ndarray]:
        """Per shard, the sorted local item numbers that any query token's `token_k` nearest tokens belong to."""
        found = []
        lookup = q.index_vectors(query, self.precision, self._ranges) if len(query) else query  # once, every shard
        for number, shard in enumerate(self.shards):
            if not shard.tokens or not len(query):
                found.append(np.zeros(0, np.int64))
                continue
            _, hits = _search(self._shard_index(number), lookup, min(token_k, shard.tokens), nprobe)
            hits = hits[hits >= 0]
            found.append(np.unique(np.searchsorted(self._offsets[number], hits, side="right") - 1))
        return found

    def search(self, queries: Sequence[np.ndarray], k: int = 10, token_k: int = 64, nprobe: int | None = 32
               ) -> tuple[list[np.ndarray], list[list[str]]]:
        """Top-k (scores, ids) of each query (an n_i x D token matrix) by exact MaxSim over its candidates."""
        import torch

        from ..losses.maxsim import maxsim, pad_tokens

        if isinstance(queries, np.ndarray) and queries.ndim == 2:
            raise InputError(f"queries are one {queries.shape} matrix, but the multi-vector index '{self.directory}' "
                             "takes a list of per-query token matrices", fix=MULTI_FIX)
        all_scores, all_ids = [], []
        for position, query in enumerate(queries):
            query = np.ascontiguousarray(np.asarray(query, dtype=np.float32))
            if query.ndim != 2 or query.shape[1] != self.dimension:
                raise InputError(f"query {position} has token matrix of shape {query.shape}, but the multi-vector "
                                 f"index '{self.directory}' holds {self.dimension}-d tokens",
                                 fix="encode queries with the model that encoded the pool (Embedder.encode_multi)")
            q_tokens, q_mask = pad_tokens([query])
            scores, keys = [], []
            for number, local in enumerate(self.candidates(query, token_k, nprobe)):
                offset = int(sum(s.count for s in self.shards[:number]))
                for start in range(0, len(local), SCORE_BATCH):
                    part = local[start:start + SCORE_BATCH]
                    d_tokens, d_mask = pad_tokens(self._item_tokens(number, part))
                    with torch.no_grad():
                        scores.append(maxsim(q_tokens, q_mask, d_tokens, d_mask)[0].numpy())
                    keys.append(part + offset)
            score = np.concatenate(scores) if scores else np.zeros(0, np.float32)
            key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
            order = np.lexsort((key, -score))[:k]
            all_scores.append(score[order])
            all_ids.append([self._global_id(int(i)) for i in key[order]])
        return all_scores, all_ids

    def _global_id(self, index: int) -> str:
        for number, shard in enumerate(self.shards):
            if index < shard.count:
                return self.shard_ids(number)[index]
            index -= shard.count
        raise IndexError(index)


def build_multivector_index(blocks: Iterable[tuple[list[str], np.ndarray, np.ndarray]], out: str | os.PathLike,
                            factory: str | None = None, pool_factor: int = 1, precision: str = "float32",
                            model_id: str | None = None, train_size: int = 200_000) -> MultiVectorIndex:
    """Build a multi-vector index from (ids, flat tokens, offsets) blocks, e.g. `multistore.iter_multi_shards(DIR)`.

    Each item's tokens are pooled by `pool_factor` (`token_pooling.pool_tokens`; 1 keeps them all); a trained
    factory (IVF, PQ) is trained once on the first block's pooled tokens (at most `train_size`)."""
    faiss = _faiss()
    pool_factor = check_pool_factor(pool_factor)
    q.check_precision(precision, "--precision", PRECISIONS)
    factory = factory or DEFAULT_FACTORY[precision]
    binary = q.is_binary(precision)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    template, ranges, dimension, shards = None, None, None, []
    for ids, tokens, offsets in blocks:
        items = pool_items([tokens[offsets[i]:offsets[i + 1]] for i in range(len(ids))], pool_factor)
        dimension = dimension or int(tokens.shape[1])
        lengths = [len(item) for item in items]
        flat = np.concatenate(items) if sum(lengths) else np.zeros((0, dimension), np.float32)
        if template is None and len(flat):  # trained (IVF, PQ) and calibrated (int8) on the first shard's tokens
            template, ranges = _trained_template(factory, dimension, flat[:train_size], precision, None, None)
        elif template is None:
            template = create_index(factory, dimension, precision)
            if not template.is_trained or q.needs_ranges(precision):
                raise ConfigError(f"index '{factory}' ({precision}) is trained or calibrated on the first embeddings "
                                  "shard's tokens, but it holds none", fix="use --factory Flat at float32 or float16")
        number = len(shards)
        shard = _Shard(f"index-{number:05d}.faiss", f"tokens-{number:05d}.npy", f"offsets-{number:05d}.npy",
                       f"ids-{number:05d}.json", len(ids), len(flat))
        index = (faiss.clone_binary_index if binary else faiss.clone_index)(template)
        if len(flat):
            index.add(q.index_vectors(flat, precision, ranges))
        (faiss.write_index_binary if binary else faiss.write_index)(index, str(out / shard.index_file))
        np.save(out / shard.tokens_file, q.quantize(flat, precision, ranges))
        np.save(out / shard.offsets_file, offsets_of(lengths))
        (out / shard.ids_file).write_text(json.dumps(list(ids)))
        shards.append(shard)
    if dimension is None:
        raise InputError("no embeddings to index", fix="check the --embeddings directory")
    if ranges is not None:
        np.save(out / q.RANGES_FILE, ranges)
    meta = {"kind": MULTI_VECTOR, "factory": factory, "dimension": dimension, "metric": "maxsim",
            "pool_factor": pool_factor, "precision": precision, "model_id": model_id,
            "count": sum(s.count for s in shards), "tokens": sum(s.tokens for s in shards),
            "shards": [s.__dict__ for s in shards]}
    (out / INDEX_META).write_text(json.dumps(meta, indent=2))
    return MultiVectorIndex(out)


def stored_tokens(rows: np.ndarray, precision: str, ranges: np.ndarray | None, dimension: int) -> np.ndarray:
    """Stored token rows as the float32 tokens MaxSim scores: float as they are, int8 at their step's value,
    binary as signs scaled to unit length (+-1/sqrt(D))."""
    if q.is_binary(precision):
        return q.dequantize(np.asarray(rows), precision) / np.float32(np.sqrt(dimension))
    return q.dequantize(np.asarray(rows), precision, ranges)  # a new float32 array (the memory map is not written)
