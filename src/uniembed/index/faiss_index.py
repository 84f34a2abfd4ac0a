"""FAISS indexes over L2-normalised embeddings (inner product = cosine), exact or approximate, sharded.

One code path serves global-pool evaluation, hard-negative mining and `uniembed search`:
`exact_topk` for in-memory pools (FAISS flat inner product, on GPU when FAISS sees one), and
`ShardedIndex` for pools built on disk with any factory string ("Flat", "IVF4096,PQ64", "HNSW32"),
searched shard by shard with the per-shard top k merged, so a pool never has to fit in memory at once.
An index may hold quantised vectors (`quantize.py`: float16, int8/uint8, packed binary), searched with float
queries and optionally re-scored with float or int8 vectors kept beside it on disk and memory-mapped.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ConfigError, InputError
from ..extras import import_optional
from . import quantize as q
from .store import MULTI_VECTOR, SINGLE_VECTOR, check_kind

log = logging.getLogger(__name__)
INDEX_META = "index.json"
MIN_POINTS_PER_CENTROID = 39  # FAISS's own guideline for k-means training


SINGLE_FIX = ("search it with single-vector query embeddings (`uniembed search` with a single-vector model, "
              "`ShardedIndex`), or build a multi-vector index from a multi-vector model's embeddings")
MULTI_FIX = ("search it with a multi-vector model's token embeddings (`uniembed search` with a model that has "
             "multi_vector_dimension, `MultiVectorIndex`), or build a single-vector index from single-vector embeddings")


def index_kind(directory: str | os.PathLike) -> str:
    """"multi_vector" or "single_vector", from the index.json of `directory` (InputError when there is none)."""
    meta_path = Path(directory) / INDEX_META
    if not meta_path.exists():
        raise InputError("no index.json: not an index directory", path=directory,
                         fix="build one with `uniembed index build --embeddings DIR --out DIR`")
    return MULTI_VECTOR if json.loads(meta_path.read_text()).get("kind") == MULTI_VECTOR else SINGLE_VECTOR


def _faiss():
    # imported lazily: the CLI and `import uniembed` stay fast, and FAISS is the `index` extra
    return import_optional("faiss", "FAISS search (uniembed index, search, eval and mining)")


def gpu_available() -> bool:
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and getattr(faiss, "get_num_gpus", lambda: 0)() > 0


def required_training_points(factory: str) -> int:
    """How many vectors `factory` needs to train: >= nlist for IVF, >= 2**nbits for PQ; 0 when untrained."""
    needed = 0
    ivf = re.search(r"IVF(\d+)", factory)
    if ivf:
        needed = max(needed, int(ivf.group(1)))
    pq = re.search(r"PQ(\d+)(?:x(\d+))?", factory)
    if pq:
        needed = max(needed, 2 ** int(pq.group(2) or 8))
    return needed


def create_index(factory: str, dimension: int, precision: str = "float32"):
    """An empty FAISS inner-product index (binary precisions: a Hamming index over `dimension` bits) from a
    factory string, with a clear error when it is invalid."""
    faiss = _faiss()
    try:
        if q.is_binary(precision):
            if dimension % 8:
                raise ConfigError(f"{precision} indexes pack 8 dimensions per byte, but the dimension is "
                                  f"{dimension}: encode with --dimensions set to a multiple of 8")
            return faiss.index_binary_factory(int(dimension), factory)
        return faiss.index_factory(int(dimension), factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ConfigError(f"FAISS cannot build index '{factory}' for dimension {dimension}: "
                          f"{str(exc).strip().splitlines()[-1]} (e.g. PQ<m> needs m to divide the dimension)") from exc


def train_index(index, factory: str, sample: np.ndarray) -> None:
    """Train `index` on `sample` when it needs training; refuse too few points with a clear error."""
    if index.is_trained:
        return
    needed = required_training_points(factory)
    if len(sample) < needed:
        raise InputError(f"index '{factory}' needs at least {needed} training vectors, got {len(sample)}",
                         fix="use --factory Flat or HNSW32 for small pools, or a smaller IVF list count (IVF<n> with n <= pool/39)")
    ivf = re.search(r"IVF(\d+)", factory)
    if ivf and len(sample) < MIN_POINTS_PER_CENTROID * int(ivf.group(1)):
        log.warning("training %s on %d vectors (< %d per list); recall may suffer", factory, len(sample), MIN_POINTS_PER_CENTROID)
    index.train(np.ascontiguousarray(sample))


def _search(index, queries: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    faiss = _faiss()
    if nprobe is not None:
        try:
            faiss.ParameterSpace().set_index_parameter(index, "nprobe", nprobe)
        except (RuntimeError, TypeError):  # no inverted lists, or a binary index ParameterSpace does not take
            if hasattr(index, "nprobe"):
                index.nprobe = nprobe
    scores, indices = index.search(np.ascontiguousarray(queries), k)
    return scores, indices


def exact_topk(queries: np.ndarray, pool: np.ndarray, k: int, use_gpu: bool | None = None,
               chunk_size: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top k of every query over `pool` (FAISS flat; GPU when available).

    Pools larger than `chunk_size` rows are searched chunk by chunk and merged. Rows are sorted by
    descending score with ties in pool order. Returns (scores, indices), Q x min(k, N); -1 pads nothing.
    """
    faiss = _faiss()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    pool = np.asarray(pool, dtype=np.float32)
    if queries.ndim != 2 or pool.ndim != 2 or queries.shape[1] != pool.shape[1]:
        raise InputError(f"queries {queries.shape} and pool {pool.shape} must be 2-D with the same dimension")
    k = min(int(k), len(pool))
    use_gpu = gpu_available() if use_gpu is None else use_gpu
    parts = []
    resources = faiss.StandardGpuResources() if use_gpu else None  # must outlive the GPU index
    for start in range(0, len(pool), chunk_size):
        index = faiss.IndexFlatIP(pool.shape[1])
        if resources is not None:
            index = faiss.index_cpu_to_gpu(resources, 0, index)
        index.add(np.ascontiguousarray(pool[start:start + chunk_size]))
        scores, indices = index.search(queries, min(k, index.ntotal))
        parts.append((scores, np.where(indices >= 0, indices + start, -1)))
    return merge_topk(parts, k)


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard (scores, global indices) into one top k: descending score, ties by index."""
    scores = np.concatenate([p[0] for p in parts], axis=1)
    indices = np.concatenate([p[1] for p in parts], axis=1)
    scores = np.where(indices < 0, -np.inf, scores)
    tie_key = np.where(indices < 0, np.iinfo(np.int64).max, indices)
    order = np.lexsort((tie_key, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(indices, order, axis=1)


@dataclass
class _Shard:
    index_file: str
    ids_file: str
    count: int


class IndexDirectory:
    """What every index directory shares, single- or multi-vector: `index.json` (checked to be of `kind`), its
    shards, their ids read on first use, the recorded model."""

    def __init__(self, directory: str | os.PathLike, kind: str, fix: str, shard_type: type) -> None:
        self.directory = Path(directory)
        check_kind(index_kind(self.directory), kind, self.directory, fix)
        self.meta = json.loads((self.directory / INDEX_META).read_text())
        self.shards = [shard_type(**s) for s in self.meta["shards"]]
        self._loaded: dict[int, object] = {}
        self._ids: dict[int, list[str]] = {}

    @property
    def dimension(self) -> int:
        return int(self.meta["dimension"])

    @property
    def factory(self) -> str:
        return str(self.meta["factory"])

    @property
    def model_id(self) -> str | None:
        return self.meta.get("model_id")

    def __len__(self) -> int:
        return sum(s.count for s in self.shards)

    def model_mismatch(self, model_id: str) -> str | None:
        """A warning when the index records another model than `model_id` (None when they agree or it is unknown)."""
        if self.model_id and model_id and self.model_id != model_id:
            return (f"index '{self.directory}' was built from embeddings of model {self.model_id}, but the query "
                    f"model is {model_id}: scores compare different embedding spaces (encode the corpus with this model)")
        return None

    def shard_ids(self, number: int) -> list[str]:
        if number not in self._ids:
            self._ids[number] = json.loads((self.directory / self.shards[number].ids_file).read_text())
        return self._ids[number]


class ShardedIndex(IndexDirectory):
    """An index stored as shards on disk: `index.json`, `index-00000.faiss`, `ids-00000.json`, ...

    Each shard is a full FAISS index over a slice of the pool; search loads one shard at a time (or
    keeps them all when `keep_loaded`), searches it, and merges the top k.
    """

    def __init__(self, directory: str | os.PathLike, keep_loaded: bool = True) -> None:
        super().__init__(directory, SINGLE_VECTOR, MULTI_FIX, _Shard)
        self.keep_loaded = keep_loaded
        self.ranges = q.read_ranges(self.directory)  # int8/uint8 code ranges (index or rescoring vectors)

    @property
    def precision(self) -> str:
        return str(self.meta.get("precision", "float32"))

    @property
    def rescore_precision(self) -> str | None:
        return self.meta.get("rescore_precision")

    def _shard_index(self, number: int):
        if number in self._loaded:
            return self._loaded[number]
        read = _faiss().read_index_binary if q.is_binary(self.precision) else _faiss().read_index
        index = read(str(self.directory / self.shards[number].index_file))
        if self.keep_loaded:
            self._loaded[number] = index
        return index

    def search(self, queries: np.ndarray, k: int = 10, nprobe: int | None = 32, precision: str | None = None,
               rescore: int = 0) -> tuple[np.ndarray, list[list[str]]]:
        """Top-k (scores Q x k, ids) of each float query over all shards.

        `precision`, when given, is the precision the caller expects the index to hold: another one is refused.
        `rescore` K > 0 fetches K x k candidates from the (quantised) index and re-ranks them by the float inner
        product with the index's rescoring vectors, so K x k >= len(self) gives exactly the float ranking.
        """
        if precision is not None:
            q.check_same_precision(self.precision, precision, self.directory)
        queries = np.atleast_2d(np.asarray(queries))
        if queries.dtype.kind != "f":
            raise InputError(f"queries are {queries.dtype} codes, but the index '{self.directory}' takes float queries "
                             f"(it quantises them to its {self.precision} itself)",
                             fix="pass the float query vectors")
        queries = queries.astype(np.float32)
        if queries.shape[1] != self.dimension:
            raise InputError(f"query dimension {queries.shape[1]} differs from the index dimension {self.dimension}",
                             fix="encode queries with the model that encoded the pool")
        if rescore and not self.rescore_precision:
            raise InputError(f"--rescore needs the vectors kept for rescoring, but the index '{self.directory}' has none",
                             fix="rebuild it with `uniembed index build --precision binary|int8|... "
                                 "--rescore-vectors float32|int8`")
        fetch = k * rescore if rescore else k
        coded = q.index_vectors(queries, self.precision)
        parts, offset = [], 0
        for number, shard in enumerate(self.shards):
            raw, indices = _search(self._shard_index(number), coded, min(fetch, shard.count), nprobe)
            scores = q.similarity(raw, self.precision, self.dimension)
            parts.append((scores, np.where(indices >= 0, indices + offset, -1)))
            offset += shard.count
        scores, indices = merge_topk(parts, fetch)
        if rescore:
            scores, indices = q.rescore(queries, indices, self._rescore_rows, k)
        return scores, [[self._global_id(int(i)) for i in row if i >= 0] for row in indices]

    def _offsets(self) -> np.ndarray:
        return np.cumsum([0] + [s.count for s in self.shards])

    def _rescore_rows(self, indices: np.ndarray) -> np.ndarray:
        """Float32 rescoring vectors of global rows, read from the memory-mapped `rescore-0000k.npy` files."""
        offsets = self._offsets()
        shard_of = np.searchsorted(offsets, indices, side="right") - 1
        rows = np.empty((len(indices), self.dimension), np.float32)
        for number in np.unique(shard_of):
            mapped = np.load(self.directory / rescore_file(int(number)), mmap_mode="r")
            picked = shard_of == number
            rows[picked] = q.dequantize(mapped[indices[picked] - offsets[number]], self.rescore_precision, self.ranges)
        return rows

    def _global_id(self, index: int) -> str:
        offsets = self._offsets()
        number = int(np.searchsorted(offsets, index, side="right") - 1)
        return self.shard_ids(number)[index - offsets[number]]


def rescore_file(number: int) -> str:
    return f"rescore-{number:05d}.npy"


def build_sharded_index(blocks: Iterable[tuple[list[str], np.ndarray]], out: str | os.PathLike,
                        factory: str | None = None, shard_size: int = 1_000_000, train_size: int = 200_000,
                        model_id: str | None = None, training_sample: np.ndarray | None = None,
                        precision: str = "float32", rescore_precision: str | None = None,
                        ranges: np.ndarray | None = None) -> ShardedIndex:
    """Build a sharded index from (ids, float embeddings) blocks, e.g. `store.iter_shards(DIR)`.

    Trained factories (IVF, PQ) are trained once, on `training_sample` or on the first `train_size`
    vectors, and every shard starts from that trained index. `precision` quantises the stored vectors
    (default factory per precision: `quantize.DEFAULT_FACTORY`); int8/uint8 ranges are `ranges` or calibrated
    on the training sample and saved as `ranges.npy`. `rescore_precision` keeps `rescore-0000k.npy` vectors
    (float32, float16 or int8) beside each shard for `search(rescore=K)`.
    """
    faiss = _faiss()
    q.check_precision(precision)
    if rescore_precision is not None:
        q.check_precision(rescore_precision, "--rescore-vectors", q.RESCORE_PRECISIONS)
    factory = factory or q.DEFAULT_FACTORY[precision]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    blocks = iter(blocks)
    pending_ids: list[str] = []
    pending: list[np.ndarray] = []
    template = None
    dimension = None
    shards: list[_Shard] = []

    def write_shard(ids: list[str], vectors: np.ndarray) -> None:
        binary = q.is_binary(precision)
        index = (faiss.clone_binary_index if binary else faiss.clone_index)(template)
        index.add(q.index_vectors(vectors, precision, ranges))
        number = len(shards)
        shard = _Shard(f"index-{number:05d}.faiss", f"ids-{number:05d}.json", len(ids))
        (faiss.write_index_binary if binary else faiss.write_index)(index, str(out / shard.index_file))
        if rescore_precision:
            np.save(out / rescore_file(number), q.quantize(vectors, rescore_precision, ranges))
        (out / shard.ids_file).write_text(json.dumps(ids))
        shards.append(shard)

    def pending_rows() -> int:
        return sum(len(p) for p in pending)

    for ids, vectors in blocks:
        vectors = np.asarray(vectors, dtype=np.float32)
        if dimension is None:
            dimension = vectors.shape[1]
        pending_ids.extend(ids)
        pending.append(vectors)
        if template is None and (pending_rows() >= train_size or training_sample is not None):
            template, ranges = _trained_template(factory, dimension, training_sample if training_sample is not None
                                                 else np.concatenate(pending)[:train_size], precision,
                                                 rescore_precision, ranges)
        while template is not None and pending_rows() >= shard_size:
            block = np.concatenate(pending)
            write_shard(pending_ids[:shard_size], block[:shard_size])
            pending_ids, pending = pending_ids[shard_size:], [block[shard_size:]]
    if dimension is None:
        raise InputError("no embeddings to index", fix="check the --embeddings directory")
    if template is None:
        template, ranges = _trained_template(factory, dimension, np.concatenate(pending)[:train_size], precision,
                                             rescore_precision, ranges)
    if pending_rows():
        block = np.concatenate(pending)
        for start in range(0, len(block), shard_size):
            write_shard(pending_ids[start:start + shard_size], block[start:start + shard_size])
    if ranges is not None:
        np.save(out / q.RANGES_FILE, ranges)
    meta = {"factory": factory, "dimension": dimension, "metric": "inner_product", "model_id": model_id,
            "precision": precision, "rescore_precision": rescore_precision,
            "count": sum(s.count for s in shards), "shards": [s.__dict__ for s in shards]}
    (out / INDEX_META).write_text(json.dumps(meta, indent=2))
    return ShardedIndex(out)


def _trained_template(factory: str, dimension: int, sample: np.ndarray, precision: str,
                      rescore_precision: str | None, ranges: np.ndarray | None):
    """(trained empty index, int8 ranges): the ranges are calibrated on the training sample when none are given."""
    if ranges is None and (q.needs_ranges(precision) or q.needs_ranges(rescore_precision)):
        ranges = q.calibrate(sample)
    index = create_index(factory, dimension, precision)
    if q.needs_ranges(precision):
        _install_ranges(index, factory, ranges)
    train_index(index, factory, q.index_vectors(sample, precision, ranges))
    return index, ranges


def _install_ranges(index, factory: str, ranges: np.ndarray) -> None:
    """Give the 8-bit scalar quantiser of an int8/uint8 index (plain or HNSW storage) our calibrated grid."""
    faiss = _faiss()
    quantiser = faiss.downcast_index(index.storage) if hasattr(index, "storage") else index
    if not isinstance(quantiser, faiss.IndexScalarQuantizer) or quantiser.sq.qtype != faiss.ScalarQuantizer.QT_8bit:
        raise ConfigError(f"an int8/uint8 index is an 8-bit scalar quantiser (factory SQ8 or HNSW<m>,SQ8), not "
                          f"'{factory}': use --precision float32 for other factories (e.g. IVF-PQ)")
    faiss.copy_array_to_vector(q.faiss_sq_ranges(ranges), quantiser.sq.trained)
    quantiser.is_trained = True
    index.is_trained = True
