"""`messages` as a list of conversations (the batched chat form mteb's OpenAIAPIEncodeWrapper sends): one
embedding per conversation, in order, each equal to that conversation sent alone; an error names the
conversation (as the item) and its message or part; the per-request item limit holds."""
from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import data_uri, png_bytes

from uniembed.serving import ServerConfig, create_app

IMAGE = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri(png_bytes("red"))}},
                                      {"type": "text", "text": "a red square"}]}]
TEXT = [{"role": "system", "content": "Find the caption"}, {"role": "user", "content": "a blue bar"}]


@pytest.fixture(scope="module")
def client(tiny_embedder):
    app = create_app(tiny_embedder, ServerConfig(served_model_name="batch", max_items_per_request=2))
    with TestClient(app) as c:
        yield c


def _vectors(client, messages) -> np.ndarray:
    response = client.post("/v1/embeddings", json={"messages": messages})
    assert response.status_code == 200, response.text
    return np.array([row["embedding"] for row in response.json()["data"]])


def test_a_list_of_conversations_gives_one_embedding_each(client):
    batch = _vectors(client, [IMAGE, TEXT])
    assert batch.shape[0] == 2
    np.testing.assert_allclose(batch[0], _vectors(client, IMAGE)[0], atol=1e-5)
    np.testing.assert_allclose(batch[1], _vectors(client, TEXT)[0], atol=1e-5)


@pytest.mark.parametrize("messages, words", [
    ([TEXT, [{"role": "user", "content": [{"type": "audio_url", "audio_url": {}}]}]],
     ["item 1", "messages[0].content[0]", "'audio_url'"]),
    ([TEXT, TEXT, TEXT], ["3 conversations", "limit of 2"]),
])
def test_errors_name_the_conversation(client, messages, words):
    response = client.post("/v1/embeddings", json={"messages": messages})
    assert response.status_code == 400, response.text
    assert all(word in response.json()["error"]["message"] for word in words), response.text
