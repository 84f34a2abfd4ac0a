"""Quantised vectors: float16, int8/uint8 with calibrated ranges, and packed binary, plus float rescoring.

Semantics follow sentence-transformers' `quantize_embeddings` (UKPLab/sentence-transformers@85ec6455,
sentence_transformers/quantization.py:371-442): int8/uint8 split each dimension's [min, max] range (from a
calibration sample) into 255 steps, uint8 = (x - min) / step and int8 = uint8 - 128; binary packs the sign bits
(x > 0) 8 per byte, as uint8 ("ubinary") or minus 128 as int8 ("binary"). Two deliberate differences: values are
rounded to the nearest step (sentence-transformers truncates) and clipped to the range (it wraps around), so a
round trip is within half a step inside the calibrated range.

The FAISS side scores a float query against the stored codes exactly ("asymmetric" search): int8/uint8 go into
FAISS's 8-bit scalar quantiser ("SQ8", one byte per dimension) with its grid set to ours (`faiss_sq_ranges`), so it
stores the same codes and scores `q . dequantised`; FAISS's `SQ8_direct*` types are not used because FAISS 1.15
quantises the query too under inner product. Binary codes go into `IndexBinaryFlat` / `IndexBinaryHNSW`, and a
Hamming distance h over D bits is reported as the +-1 inner product D - 2h.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from .store import INFO_FILE, iter_shards, read_manifest, shard_name, write_text

PRECISIONS = ("float32", "float16", "int8", "uint8", "binary", "ubinary")
RESCORE_PRECISIONS = ("float32", "float16", "int8")
RANGES_FILE = "ranges.npy"  # 2 x D float32: per-dimension min and max of the calibration sample
CALIBRATION_SIZE = 100_000
DEFAULT_FACTORY = {"float32": "Flat", "float16": "SQfp16", "int8": "SQ8", "uint8": "SQ8",
                   "binary": "BFlat", "ubinary": "BFlat"}


def check_precision(precision: str, option: str = "--precision", allowed: tuple[str, ...] = PRECISIONS) -> str:
    """`precision` when it is one of `allowed`, else a ConfigError naming the option and the choices."""
    if precision not in allowed:
        raise ConfigError(f"{option} {precision!r} is not one of {', '.join(allowed)}")
    return precision


def is_binary(precision: str) -> bool:
    return precision in ("binary", "ubinary")


def needs_ranges(precision: str | None) -> bool:
    return precision in ("int8", "uint8")


def check_same_precision(index_precision: str, query_precision: str, index: str | os.PathLike = "the index") -> None:
    """Refuse query vectors of another precision than the index's, naming both."""
    if query_precision != index_precision:
        raise InputError(f"the index '{index}' holds {index_precision} vectors but the queries are {query_precision}: "
                         "scores of different precisions do not compare",
                         fix=f"search with --precision {index_precision} (or rebuild the index with "
                             f"`uniembed index build --precision {query_precision}`)")


def calibrate(sample: np.ndarray) -> np.ndarray:
    """Per-dimension [min, max] ranges (2 x D float32) of a calibration sample of float vectors."""
    sample = np.asarray(sample, dtype=np.float32)
    if sample.ndim != 2 or len(sample) == 0:
        raise InputError(f"calibration needs a non-empty N x D sample, got shape {sample.shape}")
    return np.stack([sample.min(axis=0), sample.max(axis=0)])


def _steps(ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if ranges is None:
        raise ValueError("int8/uint8 quantisation needs ranges (see calibrate)")
    start, stop = np.asarray(ranges[0], np.float32), np.asarray(ranges[1], np.float32)
    return start, np.maximum((stop - start) / 255, np.finfo(np.float32).tiny)  # a constant dimension has no width


def quantize(embeddings: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """Float N x D vectors at `precision`: float32/float16 arrays, int8/uint8 codes on `ranges`, or N x D/8 packed bits."""
    check_precision(precision)
    embeddings = np.asarray(embeddings)
    if embeddings.dtype.kind != "f":
        raise TypeError(f"quantize takes float vectors, got {embeddings.dtype}")
    if precision in ("float32", "float16"):
        return embeddings.astype(precision)
    if needs_ranges(precision):
        start, step = _steps(ranges)
        codes = np.clip(np.rint((embeddings.astype(np.float32) - start) / step), 0, 255)
        return codes.astype(np.uint8) if precision == "uint8" else (codes - 128).astype(np.int8)
    if embeddings.shape[-1] % 8:
        raise ConfigError(f"{precision} vectors pack 8 dimensions per byte, but the dimension is "
                          f"{embeddings.shape[-1]}: use --dimensions with a multiple of 8")
    packed = np.packbits(embeddings > 0, axis=-1)
    return packed if precision == "ubinary" else (packed.astype(np.int16) - 128).astype(np.int8)


def dequantize(codes: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """Float32 vectors back from `quantize`'s output: int8/uint8 at the centre of their step, binary as +-1."""
    check_precision(precision)
    codes = np.asarray(codes)
    if needs_ranges(precision):
        start, step = _steps(ranges)
        return start + (codes.astype(np.float32) + (128 if precision == "int8" else 0)) * step
    if is_binary(precision):
        bits = np.unpackbits(_ubinary(codes, precision), axis=-1)
        return bits.astype(np.float32) * 2 - 1
    return codes.astype(np.float32)


def _ubinary(codes: np.ndarray, precision: str) -> np.ndarray:
    return codes.astype(np.uint8) if precision == "ubinary" else (codes.astype(np.int16) + 128).astype(np.uint8)


def faiss_sq_ranges(ranges: np.ndarray) -> np.ndarray:
    """FAISS QT_8bit's trained [vmin..., vdiff...] that reproduce `quantize`'s int8 grid: FAISS encodes
    floor(255 (x - vmin) / vdiff) and decodes vmin + (code + 0.5) vdiff / 255, so vmin = start - step / 2 and
    vdiff = 255 step make its code our rounded code and its decoded value start + code * step."""
    start, step = _steps(ranges)
    return np.concatenate([start - step / 2, 255 * step]).astype(np.float32)


def index_vectors(vectors: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """What to add to (or search) a FAISS index of `precision`: float32 vectors (FAISS's SQfp16 / SQ8 quantise
    them), or packed uint8 bits for the binary indexes."""
    if is_binary(precision):
        return np.ascontiguousarray(_ubinary(quantize(vectors, precision), precision))
    return np.ascontiguousarray(vectors, dtype=np.float32)


def similarity(raw: np.ndarray, precision: str, bits: int) -> np.ndarray:
    """FAISS's raw results as inner products: D - 2 * Hamming for binary, as they are otherwise."""
    return bits - 2 * raw.astype(np.float32) if is_binary(precision) else raw


def rescore(queries: np.ndarray, candidates: np.ndarray, fetch_rows, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank each query's candidate rows (Q x C global indices, -1 = none) by the float inner product with the
    vectors `fetch_rows(indices)` returns, keeping the top k: descending score, ties by index."""
    queries = np.asarray(queries, dtype=np.float32)
    valid = candidates >= 0
    vectors = fetch_rows(np.where(valid, candidates, 0).ravel()).reshape(*candidates.shape, -1)
    scores = np.einsum("qd,qcd->qc", queries, vectors).astype(np.float32)
    scores = np.where(valid, scores, -np.inf)
    order = np.lexsort((np.where(valid, candidates, np.iinfo(np.int64).max), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(candidates, order, axis=1)


def sample_rows(directory: str | os.PathLike, size: int = CALIBRATION_SIZE) -> np.ndarray:
    """Up to `size` float vectors spread evenly over an embeddings directory's shards (the calibration sample)."""
    total = len(read_manifest(directory))
    every, offset, picked = max(1, -(-total // size)), 0, []
    for _, block in iter_shards(directory):
        picked.append(np.asarray(block[(-offset) % every::every], np.float32))
        offset += len(block)
    return np.concatenate(picked)


def read_ranges(directory: str | os.PathLike) -> np.ndarray | None:
    path = Path(directory) / RANGES_FILE
    return np.load(path) if path.exists() else None


def quantize_store(directory: str | os.PathLike, precision: str, sample_size: int = CALIBRATION_SIZE) -> Path | None:
    """Add `DIR/<precision>/shard-0000k.npy` quantised copies of an embeddings directory's float shards (kept for
    resuming and rescoring), `DIR/ranges.npy` for int8/uint8 (calibrated on an even sample of `sample_size` rows),
    and the precision in `DIR/info.json`; float32 only records the precision. Returns the copies' folder."""
    directory = Path(directory)
    check_precision(precision)
    ranges = calibrate(sample_rows(directory, sample_size)) if needs_ranges(precision) else None
    out = None
    if precision != "float32":
        out = directory / precision
        out.mkdir(exist_ok=True)
        for number, (_, block) in enumerate(iter_shards(directory)):
            np.save(out / shard_name(number), quantize(np.asarray(block), precision, ranges))
    if ranges is not None:
        np.save(directory / RANGES_FILE, ranges)
    info_path = directory / INFO_FILE
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    info.update(precision=precision, ranges=RANGES_FILE if ranges is not None else None)
    write_text(info_path, json.dumps(info, indent=2) + "\n")
    return out


def store_precision(directory: str | os.PathLike) -> str | None:
    """The precision `uniembed encode --precision` recorded in an embeddings directory's info.json, if any."""
    path = Path(directory) / INFO_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("precision") if path.exists() else None
    except (ValueError, AttributeError):
        return None
