"""Video decoding says what it decoded, keeps only sampled frames, and judges bad files the same in every
container (issue 19.6): partly decodable mp4 and webm are both refused, a PNG renamed .mp4 is refused,
an empty .mp4 says "file is empty"."""
from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import write_mp4
from PIL import Image

from uniembed.errors import InputError
from uniembed.frames import FramePolicy
from uniembed.media import load_video, probe_video


def _moving(n: int, size: int = 64) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        array = np.full((size, size, 3), 255, np.uint8)
        array[:, (i * 3) % size:(i * 3) % size + 4] = (i * 6) % 256
        frames.append(array)
    return frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    write_mp4(folder / "whole.mp4", _moving(40), options={"movflags": "faststart"})  # index first, as streamed
    write_mp4(folder / "whole.webm", _moving(40), codec="libvpx")
    for name in ("whole.mp4", "whole.webm"):
        data = (folder / name).read_bytes()
        (folder / name.replace("whole", "cut")).write_bytes(data[:len(data) * 55 // 100])
    return folder


def test_decoding_reports_frames_read_and_keeps_only_the_sampled(clips):
    for name in ("whole.mp4", "whole.webm"):
        frames = load_video(clips / name, FramePolicy(num_frames=4))
        assert (frames.frames_read, frames.frames_expected, frames.indices) == (40, 40, [0, 13, 26, 39])
        assert len(frames) == 4 and all(isinstance(f, Image.Image) and f.size == (64, 64) for f in frames)
    assert probe_video((clips / "whole.mp4").read_bytes()).frames == 40  # bytes work too (server uploads)


def test_partly_decodable_video_is_refused_whatever_the_container(clips):
    for name in ("cut.mp4", "cut.webm"):
        with pytest.raises(InputError, match=r"video decodes to \d+ of the 40 frames its container declares"):
            load_video(clips / name, FramePolicy(num_frames=4))


def test_file_that_is_not_its_extension_is_refused(tmp_path, clips):
    Image.new("RGB", (32, 32), "red").save(tmp_path / "photo.mp4", "PNG")
    with pytest.raises(InputError, match=r"photo.mp4': file is not the .mp4 video its extension says: its "
                                         r"content is 'png_pipe'"):
        load_video(tmp_path / "photo.mp4")
    with pytest.raises(InputError, match="file is not a video: its content is 'png_pipe'"):
        load_video((tmp_path / "photo.mp4").read_bytes())
    (tmp_path / "webm.mp4").write_bytes((clips / "whole.webm").read_bytes())
    with pytest.raises(InputError, match="not the .mp4 video its extension says"):
        load_video(tmp_path / "webm.mp4")


def test_empty_video_file_says_so(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty.mp4': file is empty"):
        load_video(tmp_path / "empty.mp4")


def test_a_long_static_video_keeps_only_the_sampled_frames(tmp_path, monkeypatch):
    write_mp4(tmp_path / "static.mp4", [np.full((48, 64, 3), 90, np.uint8)] * 600, fps=30)
    converted = []
    original = av.VideoFrame.to_image

    def counting(self, *args, **kwargs):
        converted.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "to_image", counting)
    frames = load_video(tmp_path / "static.mp4", FramePolicy(num_frames=8))
    assert len(frames) == 8 and frames.frames_read == 600 and len(converted) == 8
