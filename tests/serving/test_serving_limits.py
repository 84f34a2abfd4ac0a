"""Limits and policies: concurrency cap (429), body size (413), item limit, timeout, API key, media policy."""
from __future__ import annotations

import asyncio
import functools
import http.server
import os
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import GatedRunner, async_client, data_uri, image_from, png_bytes, vectors

from uniembed.errors import ConfigError
from uniembed.serving import ServerConfig, create_app


def test_concurrency_cap_answers_429_and_recovers(tiny_embedder):
    gate = threading.Event()
    runner = GatedRunner(tiny_embedder, gate)
    app = create_app(tiny_embedder, ServerConfig(max_concurrency=2, max_wait_ms=0), runner=runner)

    async def scenario():
        async with async_client(app) as client:
            held = [asyncio.create_task(client.post("/v1/embeddings", json={"input": f"held {i}"})) for i in range(2)]
            while not runner.started.is_set():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            refused = await client.post("/v1/embeddings", json={"input": "one too many"})
            health = await client.get("/health")
            gate.set()
            done = await asyncio.gather(*held)
            after = await client.post("/v1/embeddings", json={"input": "after"})
            return refused, health, done, after

    refused, health, done, after = asyncio.run(scenario())
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "server_busy" and refused.headers["retry-after"] == "1"
    assert health.status_code == 200  # health checks are never capped
    assert [r.status_code for r in done] == [200, 200] and after.status_code == 200


def test_request_timeout_is_504_and_server_keeps_serving(tiny_embedder):
    gate = threading.Event()
    runner = GatedRunner(tiny_embedder, gate)
    app = create_app(tiny_embedder, ServerConfig(request_timeout_s=0.3, max_wait_ms=0), runner=runner)

    async def scenario():
        async with async_client(app) as client:
            slow = await client.post("/v1/embeddings", json={"input": "slow"})
            gate.set()
            fast = await client.post("/v1/embeddings", json={"input": "fast"})
            return slow, fast

    slow, fast = asyncio.run(scenario())
    assert slow.status_code == 504 and slow.json()["error"]["type"] == "timeout_error"
    assert fast.status_code == 200


def test_body_size_and_item_limits(tiny_embedder):
    app = create_app(tiny_embedder, ServerConfig(max_body_bytes=2000, max_items_per_request=3))
    with TestClient(app) as client:
        big = client.post("/v1/embeddings", json={"input": "x" * 3000})
        items = client.post("/v1/embeddings", json={"input": ["a", "b", "c", "d"]})
        ok = client.post("/v1/embeddings", json={"input": ["a", "b", "c"]})

        def chunks():  # no Content-Length: the limit is enforced while reading
            for _ in range(10):
                yield b" " * 500
        streamed = client.post("/v1/embeddings", content=chunks(), headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    assert streamed.status_code == 413
    assert items.status_code == 400 and "limit of 3" in items.json()["error"]["message"]
    assert ok.status_code == 200 and len(ok.json()["data"]) == 3


def test_api_key_required_on_v1_but_not_on_health(tiny_embedder):
    with TestClient(create_app(tiny_embedder, ServerConfig(api_key="s3cret"))) as client:
        missing = client.post("/v1/embeddings", json={"input": "x"})
        wrong = client.post("/v1/embeddings", json={"input": "x"}, headers={"Authorization": "Bearer nope"})
        models = client.get("/v1/models")
        good = client.post("/v1/embeddings", json={"input": "x"}, headers={"Authorization": "Bearer s3cret"})
        health = client.get("/health")
    assert missing.status_code == wrong.status_code == models.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert good.status_code == 200 and health.status_code == 200


@pytest.fixture()
def local_tree(tmp_path):
    root = tmp_path / "allowed"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "red.png").write_bytes(png_bytes("red"))
    (tmp_path / "secret.png").write_bytes(png_bytes("blue"))
    os.symlink(tmp_path / "secret.png", root / "escape.png")
    os.symlink(tmp_path, root / "escape_dir")
    os.symlink(root / "sub" / "red.png", root / "inner_link.png")
    frames = root / "frames"
    frames.mkdir()
    for i, colour in enumerate(("red", "green", "blue")):
        (frames / f"frame_{i}.png").write_bytes(png_bytes(colour))
    return root


def test_local_files_only_inside_the_allowed_directory(tiny_embedder, local_tree):
    app = create_app(tiny_embedder, ServerConfig(allow_local_files=local_tree))
    outside = str(local_tree.parent / "secret.png")
    refused = ["../secret.png", "sub/../../secret.png", outside, "file://" + outside, "escape.png",
               "escape_dir/secret.png", str(local_tree / "escape.png")]
    with TestClient(app) as client:
        inside = client.post("/v1/embeddings", json={"input": [{"image": "sub/red.png"},
                                                               {"image": str(local_tree / "sub" / "red.png")},
                                                               {"image": "inner_link.png"},
                                                               {"video": "frames"}]})
        answers = [client.post("/v1/embeddings", json={"input": [{"image": path}]}) for path in refused]
        missing = client.post("/v1/embeddings", json={"input": [{"image": "sub/none.png"}]})
    red = image_from(png_bytes("red"))
    expected = tiny_embedder.encode([{"image": red}, {"image": red}, {"image": red}, {"video": local_tree / "frames"}])
    np.testing.assert_allclose(vectors(inside), expected, atol=1e-5)
    # outside DIR and missing inside it read the same: errors tell nothing of what exists on the disk
    for path, answer in zip([*refused, "sub/none.png"], [*answers, missing]):
        assert answer.status_code == 400, path
        assert answer.json()["error"]["message"] == (
            "item 0: image 0: file not available (fix: name a file inside the --allow-local-files directory "
            "(no '..', no symlinks out))"), path


def test_allow_local_files_must_be_a_directory(tmp_path):
    with pytest.raises(ConfigError):
        ServerConfig(allow_local_files=tmp_path / "missing")


@pytest.fixture()
def http_media(tmp_path):
    (tmp_path / "red.png").write_bytes(png_bytes("red"))
    (tmp_path / "big.png").write_bytes(png_bytes("red", (600, 600)) + b"\0" * 200_000)
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_remote_media_only_when_allowed_and_within_size(tiny_embedder, http_media):
    body = {"input": [{"image": f"{http_media}/red.png"}]}
    with TestClient(create_app(tiny_embedder, ServerConfig())) as client:
        refused = client.post("/v1/embeddings", json=body)
    allowed = create_app(tiny_embedder, ServerConfig(allow_remote_media=True, max_media_bytes=100_000,
                                                     remote_allow=("127.0.0.1/32",)))
    with TestClient(allowed) as client:
        fetched = client.post("/v1/embeddings", json=body)
        too_big = client.post("/v1/embeddings", json={"input": [{"image": f"{http_media}/big.png"}]})
        absent = client.post("/v1/embeddings", json={"input": [{"image": f"{http_media}/none.png"}]})
    assert refused.status_code == 400 and "--allow-remote-media" in refused.json()["error"]["message"]
    np.testing.assert_allclose(vectors(fetched), tiny_embedder.encode([{"image": image_from(png_bytes("red"))}]),
                               atol=1e-5)
    assert too_big.status_code == absent.status_code == 400
    assert too_big.json()["error"]["message"] == absent.json()["error"]["message"]  # one text for every failure


def test_inline_media_over_the_size_limit(tiny_embedder):
    big = data_uri(png_bytes("red", (300, 300)) + b"\0" * 50_000)
    with TestClient(create_app(tiny_embedder, ServerConfig(max_media_bytes=20_000))) as client:
        response = client.post("/v1/embeddings", json={"input": ["ok", {"image": big}]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "input[1]"
    assert "over the limit" in response.json()["error"]["message"]
