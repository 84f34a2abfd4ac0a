"""`uniembed serve --dimensions D`: the default Matryoshka width of embeddings and of search queries."""
from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import vectors

from uniembed.errors import ConfigError
from uniembed.serving import SearchService, ServerConfig, create_app


def test_default_width_applies_to_requests_without_their_own(tiny_embedder):
    full = tiny_embedder.encode(["x y z"])[0]
    with TestClient(create_app(tiny_embedder, ServerConfig(dimensions=16))) as client:
        default = vectors(client.post("/v1/embeddings", json={"input": ["x y z"]}))
        own = vectors(client.post("/v1/embeddings", json={"input": ["x y z"], "dimensions": 32}))
    np.testing.assert_allclose(default[0], full[:16] / np.linalg.norm(full[:16]), atol=1e-6)
    np.testing.assert_allclose(own[0], full[:32] / np.linalg.norm(full[:32]), atol=1e-6)


def test_search_queries_are_cut_to_the_index_width(tiny_embedder, tmp_path):
    from uniembed.index.faiss_index import build_sharded_index

    texts = {"d-train": "a sentence about trains", "d-cat": "a small grey cat", "d-sea": "waves on the sea"}
    pool = tiny_embedder.encode(list(texts.values()), truncate_dim=16)
    build_sharded_index([(list(texts), pool)], tmp_path / "index", factory="Flat")
    service = SearchService.load(tmp_path / "index", dimension=16)
    with TestClient(create_app(tiny_embedder, ServerConfig(dimensions=16), search=service)) as client:
        hits = client.post("/v1/search", json={"query": "a small grey cat", "top_k": 3}).json()["data"]
    assert hits[0]["id"] == "d-cat" and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_a_width_the_model_cannot_give_fails_at_start(tiny_embedder):
    with pytest.raises(ConfigError, match=r"--dimensions=65 is outside the model's 1..64 dimensions"):
        create_app(tiny_embedder, ServerConfig(dimensions=65))
    with pytest.raises(ConfigError, match="--dimensions must be at least 1"):
        ServerConfig(dimensions=0)


def test_cli_flag_maps_onto_the_config():
    import argparse

    from uniembed.cli import serve

    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    assert serve.build_config(parser.parse_args(["serve", "--model", "m", "--dimensions", "128"])).dimensions == 128
    assert serve.build_config(parser.parse_args(["serve", "--model", "m"])).dimensions is None
