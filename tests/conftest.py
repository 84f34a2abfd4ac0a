"""Shared fixtures: a tiny random Qwen2-VL embedder (built offline) and small media files."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image, ImageDraw

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # two pytest workers on two cores: one torch thread each, or OpenMP threads fight over the cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch as _torch

    _torch.set_num_threads(1)



@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under UNIEMBED_FAIL_ON_SKIP=1 (set by `make test-interop`) a skipped test fails, naming its skip reason: the
    interop venv exists to run the tests that skip elsewhere (torchvision, mteb), so a skip there is a broken env."""
    outcome = yield
    _fail_if_skipped(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped at import (`pytest.importorskip`)."""
    outcome = yield
    _fail_if_skipped(outcome.get_result())


def _fail_if_skipped(report) -> None:
    if os.environ.get("UNIEMBED_FAIL_ON_SKIP") != "1" or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped, and UNIEMBED_FAIL_ON_SKIP=1 forbids skips in this env: {reason}"

@pytest.fixture(scope="session")
def tiny_embedder():
    import torch

    torch.set_num_threads(1)
    from uniembed import Embedder

    return Embedder.tiny(seed=0)


def draw_scene(colour: str, shape: str = "circle", size: tuple[int, int] = (72, 64)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    box = (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour)
    return image


@pytest.fixture()
def media_dir(tmp_path):
    """A folder with two images, a frame folder, an MP4 video and a 2-page PDF."""
    draw_scene("red").save(tmp_path / "red.png")
    draw_scene("blue", "square", (64, 96)).save(tmp_path / "blue.jpg")
    frames = tmp_path / "clip"
    frames.mkdir()
    for i in range(12):
        image = Image.new("RGB", (64, 64), "white")
        ImageDraw.Draw(image).ellipse((i * 4, 20, i * 4 + 16, 36), fill="green")
        image.save(frames / f"frame_{i:04d}.jpg")
    write_mp4(tmp_path / "clip.mp4", [np.asarray(Image.open(f)) for f in sorted(frames.iterdir())])
    pages = [draw_scene(c, size=(120, 160)) for c in ("red", "blue")]
    pages[0].save(tmp_path / "doc.pdf", save_all=True, append_images=pages[1:])
    return tmp_path


def write_mp4(path, frames, fps: int = 4, codec: str = "mpeg4", options: dict | None = None,
              gop_size: int | None = None) -> None:
    """Encode RGB arrays with PyAV to `path` (a file name, or a BytesIO written as MP4)."""
    import av

    target = path if hasattr(path, "write") else str(path)
    with av.open(target, mode="w", format="mp4" if hasattr(path, "write") else None, options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        if gop_size:
            stream.gop_size = gop_size
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture()
def one_thread():
    """Tiny tensors: one intra-op thread is faster and does not fight other test workers for the cores
    (use with `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
