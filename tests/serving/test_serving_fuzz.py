"""Malformed bodies never give a 5xx: hypothesis generates JSON shaped like the OpenAPI schema, and garbage."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_helpers import data_uri, png_bytes

from uniembed.serving import ServerConfig, create_app

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
MEDIA = st.sampled_from(["", "data:", "data:image/png;base64,", "data:image/png;base64,!!!", "data:;base64,AAAA",
                         "data:image/png," + "x" * 10, "aGVsbG8gd29ybGQgaGVsbG8=", "../../etc/passwd", "/etc/hosts",
                         "file:///etc/hosts", "ftp://x", "http://127.0.0.1:9/x.png", data_uri(png_bytes()),
                         data_uri(b"GIF89a" + b"\0" * 20, "image/gif")]) | st.text(max_size=30)
PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=20) | JSON}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": MEDIA}) | MEDIA | JSON}),
    st.fixed_dictionaries({"type": st.just("video_url"), "video_url": st.fixed_dictionaries(
        {"url": MEDIA | st.lists(MEDIA, max_size=3)}) | JSON}),
    st.dictionaries(st.sampled_from(["type", "text", "image_url", "video_url"]), JSON, max_size=3),
)
ITEM_OBJECT = st.dictionaries(st.sampled_from(["text", "image", "images", "video", "instruction", "extra", "type"]),
                              st.text(max_size=20) | MEDIA | st.lists(MEDIA, max_size=3) | JSON, max_size=4)
ITEM = st.text(max_size=30) | ITEM_OBJECT | st.lists(PART, max_size=3) | JSON
BODY = st.fixed_dictionaries(
    {"input": st.text(max_size=20) | st.lists(ITEM, max_size=4) | JSON},
    optional={"model": st.sampled_from(["fuzz", "other"]) | JSON,
              "encoding_format": st.sampled_from(["float", "base64", "int8"]) | JSON,
              "dimensions": st.integers(-3, 100) | JSON,
              "input_type": st.sampled_from(["query", "document", "passage"]) | JSON,
              "user": JSON, "extra": JSON},
)
SEARCH_BODY = st.fixed_dictionaries({"query": ITEM}, optional={"top_k": st.integers(-2, 5000) | JSON, "model": JSON})


@pytest.fixture(scope="module")
def client(tiny_embedder):
    app = create_app(tiny_embedder, ServerConfig(served_model_name="fuzz", max_items_per_request=8,
                                                 max_media_bytes=1_000_000))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def local_client(tiny_embedder, tmp_path_factory):
    root = tmp_path_factory.mktemp("allowed")
    (root / "red.png").write_bytes(png_bytes())
    (root / "frames").mkdir()
    (root / "frames" / "0.png").write_bytes(png_bytes("blue"))
    app = create_app(tiny_embedder, ServerConfig(allow_local_files=root, max_items_per_request=8))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


LOCAL_MEDIA = MEDIA | st.sampled_from(["red.png", "frames", "./red.png", "frames/0.png", "../x", "/", ".", "a" * 5000,
                                        "nul\x00byte", "file://red.png", "red.png/", "//etc/passwd"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(media=st.lists(LOCAL_MEDIA, min_size=1, max_size=3), key=st.sampled_from(["image", "images", "video"]))
def test_local_paths_never_5xx(local_client, media, key):
    value = media if key == "images" or (key == "video" and len(media) > 1) else media[0]
    _check(local_client.post("/v1/embeddings", json={"input": [{key: value}]}))


def _check(response):
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        error = response.json()["error"]
        assert error["message"] and error["type"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(body=BODY | JSON)
def test_embeddings_never_5xx(client, body):
    _check(client.post("/v1/embeddings", json=body))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(body=SEARCH_BODY | JSON, endpoint=st.sampled_from(["/v1/search", "/v1/rerank"]))
def test_search_and_rerank_never_5xx(client, body, endpoint):
    _check(client.post(endpoint, json=body))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_raw_bytes_never_5xx(client, raw):
    _check(client.post("/v1/embeddings", content=raw, headers={"content-type": "application/json"}))


def test_schema_documents_the_item_shapes(client):
    schema = client.get("/openapi.json").json()
    text = json.dumps(schema)
    for name in ("/v1/embeddings", "/v1/search", "/v1/rerank", "image_url", "video_url", "instruction"):
        assert name in text
