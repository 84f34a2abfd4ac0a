"""Large JSON bodies are joined and parsed in worker threads, not on the event loop, and copied once (issue 26.6);
errors are unchanged; the body deadline moves with the bytes received; plain texts are parsed into items in place."""
from __future__ import annotations

import asyncio
import json
import types

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic_core import from_json
from serving_helpers import async_client, data_uri, png_bytes, vectors

from uniembed.serving import ServerConfig, create_app, json_body
from uniembed.serving import app as app_module

PADDING = b" " * json_body.LARGE_BODY_BYTES  # whitespace: a large body holding one short item


@pytest.fixture
def parses(monkeypatch):
    """(parser, body bytes, parsed on the event loop?) for every body `json_body` parses."""
    seen: list[tuple[str, int, bool]] = []

    def recording(name, parse):
        def wrapper(body):
            try:
                asyncio.get_running_loop()
                on_loop = True
            except RuntimeError:
                on_loop = False
            seen.append((name, len(body), on_loop))
            return parse(body)
        return wrapper

    monkeypatch.setattr(json_body, "json", types.SimpleNamespace(loads=recording("json", json.loads)))
    monkeypatch.setattr(json_body, "from_json", recording("from_json", json_body.from_json))
    return seen


@pytest.fixture(scope="module")
def client(tiny_embedder):
    with TestClient(create_app(tiny_embedder, ServerConfig(served_model_name="tiny")), raise_server_exceptions=False) as c:
        yield c


def post(client, body: bytes):
    return client.post("/v1/embeddings", content=body, headers={"content-type": "application/json"})


def test_a_large_body_is_parsed_off_the_loop_and_embeds_the_same(client, parses, tiny_embedder):
    small = vectors(post(client, b'{"input": ["a red circle"]}'))
    large = vectors(post(client, b'{"input": ["a red circle"]' + PADDING + b"}"))
    np.testing.assert_allclose(large, small, atol=1e-6)
    assert [(name, on_loop) for name, _, on_loop in parses] == [("json", True), ("from_json", False)]
    assert parses[1][1] > json_body.LARGE_BODY_BYTES


def test_a_broken_large_body_is_still_a_400_naming_json(client, parses):
    broken = post(client, b'{"input": [' + PADDING)
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]
    assert [(name, on_loop) for name, _, on_loop in parses] == [("from_json", False), ("json", False)]


@pytest.mark.parametrize("text", [
    '{"input": [{"text": "caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\\\ \\n", "image": null}], "dimensions": 8, "x": [1.5e-7, -0.1, 12345678901234567890123]}',
    '{"a": 1, "a": 2, "nan": NaN, "inf": -Infinity, "lone": "\\ud800", "nested": {"b": [true, false, null, []]}}',
])
def test_the_large_body_parser_gives_what_json_loads_gives(text):
    body = text.encode() + PADDING
    parsed = json_body.parse_large(body)
    expected = json.loads(body)
    assert json.dumps(parsed, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_a_large_chunked_body_is_joined_once_in_a_worker_thread(tiny_embedder, monkeypatch):
    # the guard joins a 30 MB body's 64 KB chunks off the loop, and no one copies it again on the loop
    joins: list[bytes] = []
    parsed: list[bytes] = []
    real_to_thread = asyncio.to_thread

    async def to_thread(function, *args):
        result = await real_to_thread(function, *args)
        if function == b"".join:
            joins.append(result)
        return result

    def recording_from_json(body):
        parsed.append(body)
        return json_body.from_json(body)

    monkeypatch.setattr(json_body, "asyncio", types.SimpleNamespace(to_thread=to_thread))
    monkeypatch.setattr(json_body, "parse_large", lambda body: (parsed.append(body), from_json(body))[1])
    body = b'{"input": ["a red circle"]' + PADDING + b"}"

    async def chunks():
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    async def scenario():
        app = create_app(tiny_embedder, ServerConfig())
        async with async_client(app) as client:
            return await client.post("/v1/embeddings", content=chunks(), headers={"content-type": "application/json"})

    response = asyncio.run(scenario())
    np.testing.assert_allclose(vectors(response), tiny_embedder.encode(["a red circle"]), atol=1e-5)
    assert len(joins) == 1 and joins[0] == body
    assert len(parsed) == 1 and parsed[0] is joins[0]  # the very bytes joined: no second copy on the loop


def test_a_body_whose_deadline_keeps_moving_is_read_in_full(tiny_embedder):
    # the body deadline grows with the bytes received: 1.5 s of upload beside a 0.3 s base timeout is fine when
    # the bytes keep up with min_body_rate
    body = b'{"input": ["a red circle"]' + b" " * 30_000 + b"}"

    async def trickle():
        for start in range(0, len(body), 1000):
            yield body[start:start + 1000]
            await asyncio.sleep(0.05)

    async def scenario():
        app = create_app(tiny_embedder, ServerConfig(body_timeout_s=0.3, min_body_rate=5000))
        async with async_client(app) as client:
            return await client.post("/v1/embeddings", content=trickle(), headers={"content-type": "application/json"})

    np.testing.assert_allclose(vectors(asyncio.run(scenario())), tiny_embedder.encode(["a red circle"]), atol=1e-5)


def test_plain_texts_are_parsed_on_the_loop_and_media_in_a_worker_thread(tiny_embedder, monkeypatch):
    # a thread hop for a list of strings (nothing to check or fetch) waited on a busy loop and pool (issue 26.6)
    on_loop: list[bool] = []
    real = app_module.parse_items

    def recording(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "parse_items", recording)
    app = create_app(tiny_embedder, ServerConfig())
    bodies = [{"input": ["a red circle", "x" * 100_000]}, {"input": "one text"},
              {"input": [{"text": "a red circle", "image": data_uri(png_bytes())}]}, {"input": ["text", {"text": "t"}]}]

    async def post_each():
        async with async_client(app) as client:
            return [await client.post("/v1/embeddings", json=body) for body in bodies]

    responses = asyncio.run(post_each())
    assert [r.status_code for r in responses] == [200] * 4
    assert on_loop == [True, True, False, False]
    assert len(responses[0].json()["data"]) == 2
