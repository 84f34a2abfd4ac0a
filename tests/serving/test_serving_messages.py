"""vLLM's chat-style `messages` on /v1/embeddings, against a real `uniembed serve --model tiny` process on
127.0.0.1 (httpx): one embedding per request, equal to the same item sent as `input`; remote media through
the SSRF-guarded policy (a loopback media server allowed by --remote-allow); a 400 that names the message or
part for several user turns, unknown part types and other misuse (and, in-process, no generated chat-style body
gets a 5xx). Only loopback traffic is sent."""
from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from conftest import write_mp4
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_helpers import data_uri, media_server, png_bytes, served, vectors

from uniembed.serving import ServerConfig, create_app

PNG = png_bytes("red")


@pytest.fixture(scope="module")
def media_port():
    with media_server() as port:
        yield port


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    options = ["--model", "tiny", "--served-model-name", "tiny", "--threads", "1", "--log-level", "warning",
               "--allow-remote-media", "--remote-allow", "127.0.0.1/32"]
    with served(options, log) as (address, _):
        yield address


def _mp4_uri() -> str:
    buffer = io.BytesIO()
    frames = [np.full((32, 32, 3), (30 * i, 200, 40), dtype=np.uint8) for i in range(6)]
    write_mp4(buffer, frames)
    return data_uri(buffer.getvalue(), "video/mp4")


def _post(url: str, body: dict) -> httpx.Response:
    return httpx.post(url + "/v1/embeddings", json=body, timeout=120)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_messages_embed_one_item_like_input(url):
    image, video = data_uri(PNG), _mp4_uri()
    messages = [{"role": "system", "content": "Represent the scene for retrieval"},
                {"role": "user", "content": [{"type": "text", "text": "a red square"},
                                             {"type": "image_url", "image_url": {"url": image}},
                                             {"type": "video_url", "video_url": {"url": video}}]}]
    chat = vectors(_post(url, {"model": "tiny", "messages": messages}))
    item = {"text": "a red square", "images": [image], "video": video, "instruction": "Represent the scene for retrieval"}
    batched = vectors(_post(url, {"input": [item, "another item"]}))
    assert chat.shape == (1, batched.shape[1]) and _cosine(chat[0], batched[0]) > 0.9999
    no_instruction = vectors(_post(url, {"messages": messages[1:]}))
    assert _cosine(no_instruction[0], chat[0]) < 0.9999  # the system message is the instruction
    text_only = vectors(_post(url, {"messages": [{"role": "user", "content": "a red square"}]}))
    assert _cosine(text_only[0], vectors(_post(url, {"input": "a red square"}))[0]) > 0.9999
    cut = _post(url, {"messages": messages, "encoding_format": "base64", "dimensions": 8}).json()["data"]
    packed = np.frombuffer(base64.b64decode(cut[0]["embedding"]), dtype="<f4")
    assert len(cut) == 1 and packed.shape == (8,) and abs(np.linalg.norm(packed) - 1) < 1e-4


def test_messages_media_urls_go_through_the_media_policy(url, media_port):
    remote = [{"role": "user", "content": [{"type": "image_url",
                                            "image_url": {"url": f"http://127.0.0.1:{media_port}/red.png"}}]}]
    inline = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri(PNG)}}]}]
    assert _cosine(vectors(_post(url, {"messages": remote}))[0], vectors(_post(url, {"messages": inline}))[0]) > 0.9999
    blocked = _post(url, {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest/meta-data"}}]}]})
    assert blocked.status_code == 400 and "image 0" in blocked.json()["error"]["message"]


@pytest.mark.parametrize("body, words", [
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
     ["messages[1]", "second user message"]),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "audio_url", "audio_url": {}}]}]},
     ["messages[0].content[1]", "'audio_url'"]),
    ({"messages": [{"role": "assistant", "content": "a"}]}, ["messages[0]", "'assistant'"]),
    ({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                   {"role": "user", "content": "a"}]}, ["messages[0]", "text only"]),
    ({"messages": [{"role": "system", "content": "instruction"}]}, ["no user message"]),
    ({"messages": [{"role": "user", "content": "a"}], "input": "a"}, ["either 'input'", "not both"]),
    ({"model": "tiny"}, ["missing required field 'input'"]),
    ({"messages": []}, ["non-empty list"]),
])
def test_messages_misuse_gets_a_400_naming_the_part(url, body, words):
    response = _post(url, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert all(word in error["message"] for word in words), error


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=10)
PART = st.sampled_from([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": data_uri(PNG)}},
                        {"type": "image_url", "image_url": "data:image/png;base64,!!"}, {"type": "video_url"},
                        {"type": "audio_url", "audio_url": {"url": "x"}}, {"type": "text", "text": 3}]) | JSON
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant"]) | JSON,
                                 "content": st.text(max_size=12) | st.lists(PART, max_size=3) | JSON},
                                optional={"name": JSON})
CHAT_BODY = st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=3) | JSON},
                                  optional={"input": st.just("x"), "dimensions": st.integers(-1, 80) | JSON,
                                            "encoding_format": st.sampled_from(["float", "base64"]) | JSON})


@pytest.fixture(scope="module")
def client(tiny_embedder):
    app = create_app(tiny_embedder, ServerConfig(served_model_name="fuzz", max_items_per_request=8))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(body=CHAT_BODY)
def test_messages_never_5xx(client, body):
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"]["message"]
    else:
        assert len(response.json()["data"]) == 1
