"""Large JSON bodies are parsed in a worker thread, not on the event loop (issue 26.6); errors are unchanged."""
from __future__ import annotations

import asyncio
import json
import types

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import vectors

from uniembed.serving import ServerConfig, create_app, json_body

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
