"""`POST /pooling` {"task": "token_embed"} (vLLM's pooling API): a multi-vector model's token embeddings, equal to
`Embedder.encode_multi`, as floats or base64 with their shape; a single-vector model is refused."""
from __future__ import annotations

import base64

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import data_uri, png_bytes

from uniembed import Embedder
from uniembed.serving import ServerConfig, create_app


@pytest.fixture(scope="module")
def colqwen():
    return Embedder.tiny(seed=0, multi_vector_dim=16, prompts={"query": "Find the page that answers this"})


def test_token_embeddings_equal_encode_multi(colqwen):
    texts = ["a red circle", "two blue squares on a white page"]
    with TestClient(create_app(colqwen, ServerConfig(served_model_name="col"))) as client:
        response = client.post("/pooling", json={"model": "col", "input": texts, "task": "token_embed"})
        assert response.status_code == 200, response.text
        body = response.json()
        expected = colqwen.encode_multi(texts)  # no input_type: as encode_multi without a prompt name
        assert [row["index"] for row in body["data"]] == [0, 1] and body["data"][0]["object"] == "pooling"
        for row, tokens in zip(body["data"], expected):
            assert row["shape"] == list(tokens.shape)
            np.testing.assert_allclose(np.asarray(row["data"]), tokens, atol=1e-5)
        assert body["usage"]["token_vectors"] == sum(len(t) for t in expected)
        query = client.post("/pooling", json={"input": [{"text": "red", "image": data_uri(png_bytes("red"))}],
                                              "input_type": "query", "encoding_format": "base64"}).json()["data"][0]
        decoded = np.frombuffer(base64.b64decode(query["data"]), "<f4").reshape(query["shape"])
        from uniembed.inputs import Item
        from uniembed.media import load_image

        item = Item(text="red", image=load_image(data_uri(png_bytes("red"))))
        np.testing.assert_allclose(decoded, colqwen.encode_multi([item], prompt_name="query")[0], atol=1e-5)
        bad = client.post("/pooling", json={"input": ["x"], "task": "embed"})
        assert bad.status_code == 400


def test_single_vector_model_refuses_token_embeddings(tiny_embedder):
    with TestClient(create_app(tiny_embedder, ServerConfig(served_model_name="tiny"))) as client:
        response = client.post("/pooling", json={"input": ["a red circle"], "task": "token_embed"})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "not_multi_vector" and "single-vector" in error["message"]
        assert "/v1/embeddings" in error["message"]


def test_search_on_a_multi_vector_index_scores_the_query_tokens(colqwen, tmp_path):
    from uniembed.index.multistore import iter_multi_shards, write_multi_embeddings
    from uniembed.index.multivector import build_multivector_index
    from uniembed.serving import SearchService

    texts = ["a red circle", "a blue square", "green triangles", "a red square and a circle"]
    write_multi_embeddings(tmp_path / "emb", [f"d{i}" for i in range(4)], colqwen.encode_multi(texts))
    index = build_multivector_index(iter_multi_shards(tmp_path / "emb"), tmp_path / "index")
    with pytest.raises(ValueError, match="multi-vector index, but the served model is single-vector"):
        SearchService.load(tmp_path / "index", dimension=64)
    service = SearchService.load(tmp_path / "index", multi_vector_dimension=16)
    with TestClient(create_app(colqwen, ServerConfig(served_model_name="col"), search=service)) as client:
        response = client.post("/v1/search", json={"query": "a red circle", "top_k": 4})
        assert response.status_code == 200, response.text
        body = response.json()
    scores, ids = index.search(colqwen.encode_multi(["a red circle"], prompt_name="query"), k=4, token_k=64)
    assert [hit["id"] for hit in body["data"]] == ids[0]
    np.testing.assert_allclose([hit["score"] for hit in body["data"]], scores[0], atol=1e-4)
    assert body["usage"]["text_tokens"] > 0
