"""/v1/embeddings, /v1/search, /v1/rerank, /v1/models, /health, /metrics through FastAPI's TestClient."""
from __future__ import annotations

import base64

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import data_uri, image_from, png_bytes, vectors

from uniembed import Embedder
from uniembed.serving import SearchService, ServerConfig, create_app, write_metadata


@pytest.fixture(scope="module")
def model(tiny_embedder):
    return tiny_embedder


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(model, ServerConfig(served_model_name="tiny")), raise_server_exceptions=False) as c:
        yield c


RED, BLUE = png_bytes("red"), png_bytes("blue", (40, 72))


def test_text_inputs_match_direct_encode(client, model):
    single = vectors(client.post("/v1/embeddings", json={"model": "tiny", "input": "a red circle"}))
    batch = vectors(client.post("/v1/embeddings", json={"input": ["a red circle", "two blue squares"]}))
    expected = model.encode(["a red circle", "two blue squares"])
    assert single.shape == (1, model.dimension)
    np.testing.assert_allclose(single[0], expected[0], atol=1e-5)
    np.testing.assert_allclose(batch, expected, atol=1e-5)


def test_mixed_modality_items_each_give_one_embedding(client, model):
    body = {"input": [
        "caption only",
        {"text": "a red thing", "image": data_uri(RED), "instruction": "Find the image"},
        [{"type": "text", "text": "a red thing"}, {"type": "image_url", "image_url": {"url": data_uri(RED)}}],
        {"images": [data_uri(RED), data_uri(BLUE)]},
        {"image": base64.b64encode(BLUE).decode()},  # bare base64 is accepted too
    ]}
    got = vectors(client.post("/v1/embeddings", json=body))
    expected = model.encode([
        "caption only",
        {"text": "a red thing", "image": image_from(RED), "instruction": "Find the image"},
        {"text": "a red thing", "image": image_from(RED)},
        {"images": [image_from(RED), image_from(BLUE)]},
        {"image": image_from(BLUE)},
    ])
    assert got.shape == (5, model.dimension)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_video_as_mp4_data_uri_and_as_frame_list(client, model, media_dir):
    mp4 = (media_dir / "clip.mp4").read_bytes()
    frames = sorted((media_dir / "clip").iterdir())
    body = {"input": [{"text": "a moving dot", "video": data_uri(mp4, "video/mp4")},
                      [{"type": "video_url", "video_url": {"url": [data_uri(f.read_bytes(), "image/jpeg") for f in frames]}}]]}
    got = vectors(client.post("/v1/embeddings", json=body))
    expected = model.encode([{"text": "a moving dot", "video": media_dir / "clip.mp4"},
                             {"video": [image_from(f.read_bytes()) for f in frames]}])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_usage_counts_text_and_visual_tokens(client, model):
    items = ["short text", {"text": "pic", "image": data_uri(RED)}, {"image": data_uri(BLUE)}]
    response = client.post("/v1/embeddings", json={"input": items})
    usage = response.json()["usage"]
    counted = model.count_tokens(["short text", {"text": "pic", "image": image_from(RED)}, {"image": image_from(BLUE)}])
    assert usage["text_tokens"] == counted["text_tokens"]
    assert usage["visual_tokens"] == counted["visual_tokens"] > 0
    assert usage["prompt_tokens"] == usage["total_tokens"] == counted["text_tokens"] + counted["visual_tokens"]


def test_base64_encoding_and_dimensions(client, model):
    floats = vectors(client.post("/v1/embeddings", json={"input": ["x y z"], "encoding_format": "float"}))
    response = client.post("/v1/embeddings", json={"input": ["x y z"], "encoding_format": "base64"})
    decoded = np.frombuffer(base64.b64decode(response.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_array_equal(decoded, floats[0])
    cut = vectors(client.post("/v1/embeddings", json={"input": ["x y z"], "dimensions": 16}))
    reference = floats[0, :16] / np.linalg.norm(floats[0, :16])
    assert cut.shape == (1, 16)
    np.testing.assert_allclose(cut[0], reference, atol=1e-6)
    too_many = client.post("/v1/embeddings", json={"input": "x", "dimensions": model.dimension + 1})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "dimensions"


def test_input_type_selects_the_models_named_prompts(model):
    prompted = Embedder(model.backbone, model.config.replace(prompts={"query": "Find a picture of this", "document": ""}))
    with TestClient(create_app(prompted, ServerConfig(served_model_name="p"))) as client:
        query = vectors(client.post("/v1/embeddings", json={"input": ["a cat"], "input_type": "query"}))
        document = vectors(client.post("/v1/embeddings", json={"input": ["a cat"], "input_type": "document"}))
        own = vectors(client.post("/v1/embeddings", json={"input": [{"text": "a cat", "instruction": "Mine"}],
                                                            "input_type": "query"}))
        models = client.get("/v1/models").json()["data"][0]
    np.testing.assert_allclose(query[0], prompted.encode_query(["a cat"])[0], atol=1e-5)
    np.testing.assert_allclose(document[0], prompted.encode_document(["a cat"])[0], atol=1e-5)
    np.testing.assert_allclose(own[0], prompted.encode([{"text": "a cat", "instruction": "Mine"}])[0], atol=1e-5)
    assert not np.allclose(query, document)
    assert models["prompts"] == ["document", "query"]


@pytest.mark.parametrize("bad_item, needle", [
    ({"image": "data:image/png;base64,AAAA"}, "cannot decode image"),
    ({"text": "x", "colour": "red"}, "unknown item field"),
    ({"type": "text", "text": "x"}, "bare content part"),
    ([{"type": "audio", "audio": "x"}], "content part 0"),
    ({"text": ""}, "empty item"),
    ({"text": 5}, "'text' must be a string"),
    ({"image": "/etc/passwd"}, "local file paths are not accepted"),
    ({"image": "http://127.0.0.1:9/x.png"}, "remote URLs are not fetched"),
    ({"video": "data:video/mp4;base64," + base64.b64encode(b"not a video at all").decode()}, "cannot decode video"),
])
def test_bad_item_is_a_400_naming_its_index(client, bad_item, needle):
    response = client.post("/v1/embeddings", json={"input": ["fine", "also fine", bad_item]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "input[2]"
    assert error["message"].startswith("item 2:") and needle in error["message"]
    assert client.post("/v1/embeddings", json={"input": "still serving"}).status_code == 200


@pytest.mark.parametrize("body, param", [
    ({"input": []}, "input"),
    ({"input": 7}, "input"),
    ({"input": [1, 2, 3]}, "input"),
    ({}, "input"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"input": "x", "input_type": "passage"}, "input_type"),
    ({"input": "x", "dimensions": "big"}, "dimensions"),
    ({"input": "x", "unknown_option": True}, "unknown_option"),
])
def test_bad_request_fields_are_400_with_param(client, body, param):
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_wrong_model_name_and_broken_json(client):
    wrong = client.post("/v1/embeddings", json={"model": "gpt-4", "input": "x"})
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "model_not_found"
    broken = client.post("/v1/embeddings", content=b'{"input": [', headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]


def test_models_health_metrics(client, model):
    listing = client.get("/v1/models").json()
    entry = listing["data"][0]
    assert listing["object"] == "list" and entry["id"] == "tiny"
    assert entry["dimension"] == model.dimension and entry["modalities"] == ["text", "image", "video"]
    assert client.get("/health").json()["status"] == "ok"
    client.post("/v1/embeddings", json={"input": ["metric me"]})
    text = client.get("/metrics").text
    assert 'uniembed_requests_total{endpoint="/v1/embeddings",status="200"}' in text
    assert "uniembed_batch_items_count" in text and 'uniembed_tokens_total{kind="text"}' in text


def test_rerank_without_reranker_is_a_clear_404(client):
    response = client.post("/v1/rerank", json={"query": "q", "documents": ["a", "b"]})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "reranker_not_configured"


class LengthReranker:
    """Scores a candidate by how many characters of its text it shares with the query (a known ranking)."""

    def score(self, query, candidates):
        return [len(set(query.text) & set(c.text or "")) for c in candidates]


def test_rerank_plugs_in_a_reranker(model):
    with TestClient(create_app(model, ServerConfig(), reranker=LengthReranker())) as client:
        response = client.post("/v1/rerank", json={"query": "abcdef", "documents": ["xyz", "abc", "abcde", "a"],
                                                   "top_n": 3, "return_documents": True})
        bad = client.post("/v1/rerank", json={"query": "abc", "documents": ["ok", {"image": "nope"}]})
    assert response.status_code == 200, response.text
    assert [r["index"] for r in response.json()["results"]] == [2, 1, 3]
    assert response.json()["results"][0] == {"index": 2, "relevance_score": 5.0, "document": "abcde"}
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "documents[1]"


def test_search_returns_ids_scores_and_metadata(model, tmp_path):
    from uniembed.index.faiss_index import build_sharded_index

    documents = {"d-red": {"image": image_from(RED)}, "d-blue": {"image": image_from(BLUE)},
                 "d-text": {"text": "a sentence about trains"}}
    pool = model.encode(list(documents.values()))
    index = build_sharded_index([(list(documents), pool)], tmp_path / "index", factory="Flat")
    write_metadata(tmp_path / "index", {"d-red": {"title": "red square"}, "d-text": {"title": "trains"}})
    service = SearchService.load(tmp_path / "index", dimension=model.dimension)
    assert len(service) == len(index) == 3
    with TestClient(create_app(model, ServerConfig(), search=service)) as client:
        response = client.post("/v1/search", json={"query": {"image": data_uri(RED)}, "top_k": 2})
        text_query = client.post("/v1/search", json={"query": "a sentence about trains", "top_k": 10})
        bad = client.post("/v1/search", json={"query": {"image": "???"}, "top_k": 2})
    hits = response.json()["data"]
    assert [h["rank"] for h in hits] == [1, 2]
    assert hits[0]["id"] == "d-red" and hits[0]["metadata"] == {"title": "red square"}
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert hits[0]["score"] >= hits[1]["score"]
    text_hits = text_query.json()["data"]
    assert len(text_hits) == 3 and text_hits[0]["id"] == "d-text"
    assert {h["id"]: h["metadata"] for h in text_hits}["d-blue"] == {}
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "query"


def test_search_without_index_and_dimension_mismatch(client, model, tmp_path):
    from uniembed.errors import ConfigError
    from uniembed.index.faiss_index import build_sharded_index

    response = client.post("/v1/search", json={"query": "x"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "index_not_loaded"
    build_sharded_index([(["a"], np.ones((1, 8), dtype=np.float32))], tmp_path / "small")
    with pytest.raises(ConfigError, match="8-d vectors"):
        SearchService.load(tmp_path / "small", dimension=model.dimension)
