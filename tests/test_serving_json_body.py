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
    """(body bytes, parsed on the event loop?) for every body `json_body` parses."""
    seen: list[tuple[int, bool]] = []

    def loads(body):
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        seen.append((len(body), on_loop))
        return json.loads(body)

    monkeypatch.setattr(json_body, "json", types.SimpleNamespace(loads=loads))
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
    assert [on_loop for _, on_loop in parses] == [True, False]
    assert parses[1][0] > json_body.LARGE_BODY_BYTES


def test_a_broken_large_body_is_still_a_400_naming_json(client, parses):
    broken = post(client, b'{"input": [' + PADDING)
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]
    assert parses and not parses[-1][1]
