"""Token pooling (colpali-engine's hierarchical pooler), the ragged multi-vector store, and the multi-vector index:
candidates from FAISS over tokens, then exact MaxSim, equal to brute force when the candidates cover the pool;
single- and multi-vector directories refuse each other, naming both kinds."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from uniembed.errors import InputError
from uniembed.index.faiss_index import ShardedIndex, build_sharded_index
from uniembed.index.multistore import iter_multi_shards, read_multi_embeddings, write_multi_embeddings
from uniembed.index.multivector import MultiVectorIndex, build_multivector_index
from uniembed.index.store import iter_shards, write_embeddings
from uniembed.index.token_pooling import pool_tokens, pooled_count
from uniembed.losses.maxsim import maxsim, pad_tokens


def unit(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def brute_maxsim(query, items):
    q, q_mask = pad_tokens([query], dtype=torch.float64)
    d, d_mask = pad_tokens(items, dtype=torch.float64)
    return maxsim(q, q_mask, d, d_mask)[0].numpy()


def test_pooling_identical_tokens_is_lossless():
    rng = np.random.default_rng(0)
    distinct = unit(rng, (4, 16))
    tokens = np.tile(distinct, (3, 1))  # every token three times, copies apart: factor 3 merges each triple
    pooled = pool_tokens(tokens, 3)
    assert pooled.shape == (4, 16)
    queries = [unit(rng, (5, 16)) for _ in range(3)]
    for query in queries:
        np.testing.assert_allclose(brute_maxsim(query, [pooled]), brute_maxsim(query, [tokens]), rtol=1e-5)


def test_pool_factor_one_is_the_identity_and_the_cluster_count_rule():
    rng = np.random.default_rng(1)
    tokens = unit(rng, (10, 8))
    np.testing.assert_array_equal(pool_tokens(tokens, 1), tokens)
    assert [pooled_count(n, 3) for n in (0, 1, 2, 3, 10)] == [0, 1, 1, 1, 3]
    for factor in (2, 3, 4, 20):
        pooled = pool_tokens(tokens, factor)
        assert len(pooled) == max(10 // factor, 1)  # distinct random tokens: maxclust reaches the bound
        np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="pool-factor"):
        pool_tokens(tokens, 0)


def ragged_pool(rng, counts, dim=8):
    return [f"d{i}" for i in range(len(counts))], [unit(rng, (n, dim)) for n in counts]


def test_store_round_trip_and_brute_force_equal_ranking(tmp_path):
    rng = np.random.default_rng(2)
    ids, items = ragged_pool(rng, [3, 7, 1, 5, 4, 6, 2, 9, 3])
    write_multi_embeddings(tmp_path / "emb", ids, items, shard_size=4, model_id="m")
    back_ids, back = read_multi_embeddings(tmp_path / "emb")
    assert back_ids == ids and all(np.array_equal(a, b) for a, b in zip(back, items))
    index = build_multivector_index(iter_multi_shards(tmp_path / "emb"), tmp_path / "index", model_id="m")
    assert len(index) == 9 and index.token_count == 40 and len(index.shards) == 3
    queries = [unit(rng, (n, 8)) for n in (2, 5, 1)]
    scores, found = index.search(queries, k=9, token_k=100)  # every token of a shard: candidates cover the pool
    for query, score, hit in zip(queries, scores, found):
        brute = brute_maxsim(query, items)
        order = np.lexsort((np.arange(len(ids)), -brute))
        assert hit == [ids[i] for i in order]
        np.testing.assert_allclose(score, brute[order], rtol=1e-5)
    top, _ = index.search(queries, k=3, token_k=1)  # fewer candidates: still exact MaxSim scores, at most k
    assert all(len(s) <= 3 for s in top)


def test_pooled_index_keeps_fewer_tokens(tmp_path):
    rng = np.random.default_rng(3)
    ids, items = ragged_pool(rng, [6, 9, 12])
    write_multi_embeddings(tmp_path / "emb", ids, items)
    index = build_multivector_index(iter_multi_shards(tmp_path / "emb"), tmp_path / "index", pool_factor=3,
                                    precision="float16")
    assert index.token_count == 2 + 3 + 4 and index.pool_factor == 3 and index.precision == "float16"
    assert np.load(tmp_path / "index" / "tokens-00000.npy").dtype == np.float16


def test_single_and_multi_vector_refuse_each_other(tmp_path):
    rng = np.random.default_rng(4)
    ids, items = ragged_pool(rng, [2, 3])
    write_multi_embeddings(tmp_path / "multi", ids, items)
    write_embeddings(tmp_path / "single", ids, unit(rng, (2, 8)))
    with pytest.raises(InputError, match="multi-vector directory, but a single-vector one"):
        list(iter_shards(tmp_path / "multi"))
    with pytest.raises(InputError, match="single-vector directory, but a multi-vector one"):
        list(iter_multi_shards(tmp_path / "single"))
    build_multivector_index(iter_multi_shards(tmp_path / "multi"), tmp_path / "multi-index")
    build_sharded_index(iter_shards(tmp_path / "single"), tmp_path / "single-index")
    with pytest.raises(InputError, match="multi-vector directory, but a single-vector one") as refused:
        ShardedIndex(tmp_path / "multi-index")
    assert "MultiVectorIndex" in refused.value.fix
    with pytest.raises(InputError, match="single-vector directory, but a multi-vector one") as refused:
        MultiVectorIndex(tmp_path / "single-index")
    assert "ShardedIndex" in refused.value.fix
    index = MultiVectorIndex(tmp_path / "multi-index")
    with pytest.raises(InputError, match="per-query token matrices"):
        index.search(unit(rng, (2, 8)))
    with pytest.raises(InputError, match="8-d tokens"):
        index.search([unit(rng, (2, 4))])
    assert json.loads((tmp_path / "multi" / "info.json").read_text())["kind"] == "multi_vector"


def test_quantised_token_stores_are_scored_as_stored(tmp_path):
    """int8 tokens score at their calibrated step's value, binary tokens as signs of unit length; the candidates
    cover the pool here, so each ranking is brute-force MaxSim over those tokens (computed by hand below)."""
    rng = np.random.default_rng(5)
    ids, items = ragged_pool(rng, [3, 7, 1, 5, 4, 6], dim=16)
    write_multi_embeddings(tmp_path / "emb", ids, items, shard_size=4)
    queries = [unit(rng, (n, 16)) for n in (2, 5)]
    first_shard = np.concatenate(items[:4])  # int8: calibrated on the first shard's tokens
    start, stop = first_shard.min(axis=0), first_shard.max(axis=0)
    step = (stop - start) / 255
    by_hand = {
        "int8": [start + np.clip(np.rint((item - start) / step), 0, 255) * step for item in items],
        "binary": [np.where(item > 0, 1.0, -1.0) / 4.0 for item in items],  # sqrt(16) = 4
    }
    for precision, expected_tokens in by_hand.items():
        index = build_multivector_index(iter_multi_shards(tmp_path / "emb"), tmp_path / precision, precision=precision)
        assert index.precision == precision and index.factory == {"int8": "SQ8", "binary": "BFlat"}[precision]
        stored = np.load(tmp_path / precision / "tokens-00000.npy")
        assert stored.dtype == np.int8 and stored.shape == (3 + 7 + 1 + 5, 16 if precision == "int8" else 2)
        scores, found = index.search(queries, k=6, token_k=100)
        for query, score, hit in zip(queries, scores, found):
            brute = brute_maxsim(query, expected_tokens)
            order = np.lexsort((np.arange(len(ids)), -brute))
            assert hit == [ids[i] for i in order], precision
            np.testing.assert_allclose(score, brute[order], rtol=1e-4, atol=1e-5)
    # binary candidates come from Hamming distances of the query tokens' signs: a token's own item is found
    binary = MultiVectorIndex(tmp_path / "binary")
    _, found = binary.search([items[3][1:2]], k=1, token_k=1)
    assert found == [["d3"]]
    assert (tmp_path / "int8" / "ranges.npy").exists() and not (tmp_path / "binary" / "ranges.npy").exists()


def test_binary_tokens_need_a_width_divisible_by_8(tmp_path):
    from uniembed.errors import ConfigError

    ids, items = ragged_pool(np.random.default_rng(6), [2, 3], dim=12)
    write_multi_embeddings(tmp_path / "emb", ids, items)
    with pytest.raises(ConfigError, match="pack 8 dimensions per byte, but the dimension is 12"):
        build_multivector_index(iter_multi_shards(tmp_path / "emb"), tmp_path / "index", precision="binary")
    with pytest.raises(ConfigError, match="is not one of float32, float16, int8, binary"):
        build_multivector_index(iter_multi_shards(tmp_path / "emb"), tmp_path / "index", precision="uint8")
