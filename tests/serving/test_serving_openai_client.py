"""A real uvicorn server on 127.0.0.1 and the official `openai` client, unchanged."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import uvicorn
from serving_helpers import data_uri, free_port, image_from, png_bytes

from uniembed.serving import ServerConfig, create_app


@pytest.fixture(scope="module")
def base_url(tiny_embedder):
    app = create_app(tiny_embedder, ServerConfig(served_model_name="tiny", api_key="key-123"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def test_openai_client_text_and_multimodal(base_url, tiny_embedder):
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="key-123", max_retries=0)
    texts = client.embeddings.create(model="tiny", input=["a red circle", "a blue square"])
    got = np.array([row.embedding for row in texts.data], dtype=np.float32)
    np.testing.assert_allclose(got, tiny_embedder.encode(["a red circle", "a blue square"]), atol=1e-5)
    assert texts.usage.prompt_tokens == texts.usage.total_tokens > 0

    red = png_bytes("red")
    items = [{"text": "a red circle", "image": data_uri(red)},
             [{"type": "text", "text": "a red circle"}, {"type": "image_url", "image_url": {"url": data_uri(red)}}]]
    mixed = client.embeddings.create(model="tiny", input="placeholder", extra_body={"input": items},
                                     encoding_format="float")
    got = np.array([row.embedding for row in mixed.data], dtype=np.float32)
    expected = tiny_embedder.encode([{"text": "a red circle", "image": image_from(red)}] * 2)
    assert len(mixed.data) == 2
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert mixed.usage.model_extra["visual_tokens"] > 0  # the extra usage fields reach the client

    short = client.embeddings.create(model="tiny", input="cut me", dimensions=8)
    assert len(short.data[0].embedding) == 8
    assert np.linalg.norm(short.data[0].embedding) == pytest.approx(1.0, abs=1e-5)


def test_openai_client_sees_errors(base_url):
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="key-123", max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model="tiny", input="x", extra_body={"input": ["ok", {"image": "nope"}]})
    assert "item 1" in str(bad.value)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).embeddings.create(model="tiny", input="x")
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]
