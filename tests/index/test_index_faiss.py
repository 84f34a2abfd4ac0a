"""Embedding shards, FAISS indexes (flat, IVF-PQ, HNSW), sharded search and the index CLI."""
import json

import numpy as np
import pytest

from uniembed.cli.main import main
from uniembed.errors import ConfigError, InputError
from uniembed.index import ShardedIndex, build_sharded_index, exact_topk, iter_shards, merge_topk, \
    read_embeddings, read_manifest, write_embeddings


def unit(rng, n, d=16):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_shard_store_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    vectors = unit(rng, 25)
    ids = [f"doc{i}" for i in range(25)]
    write_embeddings(tmp_path / "emb", ids, vectors, shard_size=10)  # the writer `uniembed encode` uses
    assert sorted(p.name for p in (tmp_path / "emb").glob("shard-*.npy")) == [f"shard-0000{i}.npy" for i in range(3)]
    rows = read_manifest(tmp_path / "emb")
    assert [(r.shard, r.row) for r in (rows[9], rows[10], rows[17], rows[18])] == [(0, 9), (1, 0), (1, 7), (1, 8)]
    read_ids, read_vectors = read_embeddings(tmp_path / "emb")
    assert read_ids == ids
    np.testing.assert_array_equal(read_vectors, vectors)
    with pytest.raises(InputError, match="already holds"):
        write_embeddings(tmp_path / "emb", ids, vectors)


def test_bad_manifest_names_the_row(tmp_path):
    write_embeddings(tmp_path, ["a"], np.ones((1, 4), np.float32))
    with open(tmp_path / "manifest.jsonl", "a") as handle:
        handle.write('{"id": "b"}\n')
    with pytest.raises(InputError, match="row 2"):
        read_manifest(tmp_path)


def test_exact_topk_matches_brute_force_with_ties_in_order():
    rng = np.random.default_rng(1)
    pool, queries = unit(rng, 300), unit(rng, 7)
    scores, indices = exact_topk(queries, pool, 5, chunk_size=64)
    expected = np.argsort(-(queries @ pool.T), axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(indices, expected)
    tied = np.tile(pool[:1], (6, 1))
    _, order = exact_topk(pool[:1], tied, 6, chunk_size=4)
    assert list(order[0]) == [0, 1, 2, 3, 4, 5]


def test_merge_topk_orders_by_score_then_index():
    a = (np.array([[0.9, 0.5]]), np.array([[3, 1]]))
    b = (np.array([[0.9, 0.7]]), np.array([[2, -1]]))
    scores, indices = merge_topk([a, b], 3)
    assert indices.tolist() == [[2, 3, 1]] and scores.tolist() == [[0.9, 0.9, 0.5]]


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF4,Flat"])
def test_sharded_index_recovers_exact_neighbours(tmp_path, factory):
    rng = np.random.default_rng(2)
    vectors = unit(rng, 400)
    ids = [f"v{i}" for i in range(400)]
    write_embeddings(tmp_path / "emb", ids, vectors, shard_size=150)
    index = build_sharded_index(iter_shards(tmp_path / "emb"), tmp_path / "idx", factory=factory, shard_size=120)
    assert len(index.shards) == 4 and len(index) == 400
    reloaded = ShardedIndex(tmp_path / "idx")
    scores, found = reloaded.search(vectors[[5, 250, 399]], k=3, nprobe=4)
    assert [row[0] for row in found] == ["v5", "v250", "v399"]
    assert scores[:, 0] == pytest.approx(1.0, abs=1e-4)


def test_ivf_with_too_few_points_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(3)
    write_embeddings(tmp_path / "emb", [str(i) for i in range(50)], unit(rng, 50))
    with pytest.raises(InputError, match="needs at least 4096 training vectors, got 50"):
        build_sharded_index(iter_shards(tmp_path / "emb"), tmp_path / "idx", factory="IVF4096,PQ8")
    with pytest.raises(ConfigError, match="PQ"):
        build_sharded_index(iter_shards(tmp_path / "emb"), tmp_path / "idx2", factory="IVF1,PQ5")


def test_index_build_cli_and_query_dimension_check(tmp_path, capsys):
    rng = np.random.default_rng(4)
    vectors = unit(rng, 30)
    write_embeddings(tmp_path / "emb", [f"id{i}" for i in range(30)], vectors)
    code = main(["index", "build", "--embeddings", str(tmp_path / "emb"), "--factory", "Flat", "--out",
                 str(tmp_path / "idx"), "--shard-size", "8", "--model-id", "m1"])
    assert code == 0 and "indexed 30 vectors" in capsys.readouterr().out
    meta = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert meta["model_id"] == "m1" and [s["count"] for s in meta["shards"]] == [8, 8, 8, 6]
    index = ShardedIndex(tmp_path / "idx")
    _, found = index.search(vectors[29], k=1)
    assert found == [["id29"]]
    with pytest.raises(InputError, match="dimension"):
        index.search(np.ones((1, 3), np.float32))
    assert main(["index", "build", "--embeddings", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
