"""Quantised vectors (issue 25): packed binary, calibrated int8, quantised FAISS indexes and float rescoring."""
import json

import numpy as np
import pytest

from uniembed.errors import ConfigError, InputError
from uniembed.index import ShardedIndex, build_sharded_index, iter_shards, write_embeddings
from uniembed.index import quantize as q


def unit(rng, n, d=32):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def float_ranking(queries, pool, k):
    return np.argsort(-(queries @ pool.T), axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("precision", ["binary", "ubinary"])
def test_packed_binary_round_trip(precision):
    rng = np.random.default_rng(0)
    x = unit(rng, 50, 64)
    codes = q.quantize(x, precision)
    assert codes.shape == (50, 8) and codes.dtype == (np.int8 if precision == "binary" else np.uint8)
    assert codes.nbytes == 50 * 64 // 8  # dim/8 bytes per vector
    np.testing.assert_array_equal(q.dequantize(codes, precision), np.where(x > 0, 1.0, -1.0))
    # bit order and offset as sentence-transformers' quantize_embeddings: packbits, binary = ubinary - 128
    np.testing.assert_array_equal(codes.astype(np.int16), np.packbits(x > 0, axis=1).astype(np.int16)
                                  - (128 if precision == "binary" else 0))


@pytest.mark.parametrize("precision", ["int8", "uint8"])
def test_int8_calibration_round_trip_within_the_step(precision):
    rng = np.random.default_rng(1)
    sample, x = unit(rng, 2000), unit(rng, 300)
    ranges = q.calibrate(sample)
    np.testing.assert_array_equal(ranges, np.stack([sample.min(axis=0), sample.max(axis=0)]))
    codes = q.quantize(sample, precision, ranges).astype(np.int16)  # the sample spans the whole code range
    lowest = -128 if precision == "int8" else 0
    assert np.all(codes.min(axis=0) == lowest) and np.all(codes.max(axis=0) == lowest + 255)
    step = (ranges[1] - ranges[0]) / 255
    inside = np.clip(x, ranges[0], ranges[1])
    codes = q.quantize(inside, precision, ranges)
    assert codes.dtype == np.dtype(precision)
    error = np.abs(q.dequantize(codes, precision, ranges) - inside)
    assert np.all(error <= step / 2 + 1e-6)
    # outside the calibrated range values clip to the end codes instead of wrapping around
    low = q.quantize(ranges[:1] - 1.0, precision, ranges)
    assert np.all(low == (-128 if precision == "int8" else 0))


def test_bad_precision_and_odd_binary_dimension_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="'int4' is not one of"):
        q.quantize(np.ones((1, 8), np.float32), "int4")
    with pytest.raises(ConfigError, match="multiple of 8"):
        q.quantize(np.ones((1, 12), np.float32), "binary")
    with pytest.raises(ConfigError, match="8-bit scalar quantiser"):  # IVF would quantise residuals on its own grid
        build(tmp_path, unit(np.random.default_rng(6), 150), precision="int8", factory="IVF2,SQ8")


def build(tmp_path, pool, **options):
    ids = [f"d{i}" for i in range(len(pool))]
    return build_sharded_index([(ids[:70], pool[:70]), (ids[70:], pool[70:])], tmp_path / "index",
                               shard_size=60, **options)


@pytest.mark.parametrize("precision,rescore_precision,factory", [
    ("binary", "float32", None), ("ubinary", "float32", "BHNSW32"), ("int8", "float32", None),
    ("int8", "int8", "HNSW32,SQ8"), ("uint8", "float16", None), ("float16", "float32", None), ("binary", "int8", None)])
def test_rescoring_a_covering_pool_gives_the_float_ranking(tmp_path, precision, rescore_precision, factory):
    rng = np.random.default_rng(2)
    pool, queries = unit(rng, 150), unit(rng, 9)
    index = build(tmp_path, pool, precision=precision, rescore_precision=rescore_precision, factory=factory)
    assert [s.count for s in index.shards] == [60, 60, 30]
    scores, ids = index.search(queries, k=10, rescore=15)  # 15 x 10 >= 150: every vector is a candidate
    rescore_pool = q.dequantize(q.quantize(pool, rescore_precision, index.ranges), rescore_precision, index.ranges)
    expected = float_ranking(queries, rescore_pool, 10)
    assert ids == [[f"d{i}" for i in row] for row in expected]
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ rescore_pool.T, expected, axis=1), atol=1e-5)


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary"])
def test_quantised_scores_are_the_inner_product_with_the_dequantised_codes(tmp_path, precision):
    rng = np.random.default_rng(3)
    pool, queries = unit(rng, 150), unit(rng, 4)
    index = build(tmp_path, pool, precision=precision)
    scores, ids = index.search(queries, k=5)
    decoded = q.dequantize(q.quantize(pool, precision, index.ranges), precision, index.ranges)
    reference = queries @ decoded.T if precision != "binary" else q.dequantize(q.quantize(queries, "binary"), "binary") @ decoded.T
    rows = [[int(i[1:]) for i in row] for row in ids]
    np.testing.assert_allclose(scores, np.take_along_axis(reference, np.array(rows), axis=1), atol=1e-4)
    assert np.allclose(scores, -np.sort(-reference, axis=1)[:, :5], atol=1e-4)
    meta = json.loads((tmp_path / "index" / "index.json").read_text())
    assert meta["precision"] == precision and (tmp_path / "index" / "ranges.npy").exists() == (precision != "binary")


def test_mismatched_precision_and_rescore_without_vectors_are_refused(tmp_path):
    rng = np.random.default_rng(4)
    index = build(tmp_path, unit(rng, 150), precision="binary")
    with pytest.raises(InputError, match="holds binary vectors but the queries are int8"):
        index.search(unit(rng, 1), k=3, precision="int8")
    with pytest.raises(InputError, match="takes float queries"):
        index.search(q.quantize(unit(rng, 1), "binary"), k=3)
    with pytest.raises(InputError, match="has none"):
        index.search(unit(rng, 1), k=3, rescore=4)
    assert ShardedIndex(tmp_path / "index").search(unit(rng, 1), k=3, precision="binary")[0].shape == (1, 3)


def test_quantize_store_writes_packed_shards_ranges_and_info(tmp_path):
    rng = np.random.default_rng(5)
    pool = unit(rng, 40)
    write_embeddings(tmp_path, [f"d{i}" for i in range(40)], pool, shard_size=16)
    out = q.quantize_store(tmp_path, "int8", sample_size=10)
    assert sorted(p.name for p in out.glob("*.npy")) == ["shard-00000.npy", "shard-00001.npy", "shard-00002.npy"]
    assert q.store_precision(tmp_path) == "int8" and q.read_ranges(tmp_path).shape == (2, 32)
    assert len(q.sample_rows(tmp_path, 10)) == 10
    codes = np.concatenate([np.load(p) for p in sorted(out.glob("*.npy"))])
    np.testing.assert_array_equal(codes, q.quantize(pool, "int8", q.read_ranges(tmp_path)))
    assert [len(block) for _, block in iter_shards(tmp_path)] == [16, 16, 8]  # the float shards stay for rescoring
