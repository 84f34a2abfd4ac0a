"""Shared helpers of the serving tests: inline media, a gated runner, an async client on the ASGI app."""
from __future__ import annotations

import base64
import contextlib
import http.server
import io
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
from PIL import Image
from ports import free_port  # noqa: F401  (re-exported for the serving tests)

from uniembed.serving.runner import ModelRunner


def png_bytes(colour: str = "red", size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


RED_PNG = png_bytes("red")


class _MediaHandler(http.server.BaseHTTPRequestHandler):
    """/red.png (a PNG), /redirect/HOST/PATH (302 there), /loop (302 to itself), /trickle (a byte every 0.2 s);
    anything else 404."""

    def do_GET(self):  # noqa: N802
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", "http://" + self.path[len("/redirect/"):])
            self.end_headers()
            return
        if self.path == "/trickle":  # a byte every 0.2 s, for ever
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return
        if self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
            return
        self.send_response(200 if self.path == "/red.png" else 404)
        self.send_header("Content-Length", str(len(RED_PNG)))
        self.end_headers()
        self.wfile.write(RED_PNG)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def media_server() -> Iterator[int]:
    """A loopback HTTP media server (see `_MediaHandler`) for remote-media tests: yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MediaHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


@contextlib.contextmanager
def served(options: list[str], log: Path, wait_s: float = 120) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real `uniembed serve OPTIONS --port P` process on 127.0.0.1, its output in `log`: yields (url,
    process) once /health answers, and stops it afterwards (terminate, then kill)."""
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "uniembed.cli.main", "serve", *options, "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + wait_s
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited: {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + "/health", timeout=1).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise AssertionError(f"server not healthy after {wait_s} s: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def image_from(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def vectors(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.array([row["embedding"] for row in response.json()["data"]], dtype=np.float32)


def async_client(app) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


class GatedRunner(ModelRunner):
    """A real runner whose batches wait for `gate` (to hold requests in flight) and which records batch sizes."""

    def __init__(self, model, gate: threading.Event | None = None) -> None:
        super().__init__(model)
        self.gate = gate
        self.batch_sizes: list[int] = []
        self.started = threading.Event()

    def encode(self, items):
        self.started.set()
        if self.gate is not None:
            self.gate.wait(timeout=30)
        self.batch_sizes.append(len(items))
        return super().encode(items)
