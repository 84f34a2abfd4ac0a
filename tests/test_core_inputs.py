"""Items and media: every source decodes, every bad input names the item and the fix."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from uniembed.frames import FramePolicy
from uniembed import IMAGE, TEXT, VIDEO, InputError, Item, MediaLimits, as_item, as_items
from uniembed.media import load_image, load_video, pdf_pages, uniform_indices


def test_conversions_and_modality(media_dir):
    assert as_item("a cat").modality == TEXT
    assert as_item(Image.new("RGB", (8, 8))).modality == IMAGE
    assert as_item(media_dir / "red.png").modality == IMAGE
    assert as_item(media_dir / "clip.mp4").modality == VIDEO
    assert as_item(media_dir / "clip").modality == VIDEO
    fused = as_item({"text": "what colour?", "image": str(media_dir / "red.png"), "instruction": "Answer"})
    assert fused.modality == TEXT | IMAGE and fused.modality_name == "text+image"
    assert Item(images=["a.png", "b.png"]).modality == IMAGE
    assert Item(text="x", video="v.mp4").modality == TEXT | VIDEO


def test_bad_items_name_their_position():
    with pytest.raises(InputError, match=r"item 2: empty item"):
        as_items(["ok", {"text": "fine"}, {"text": "   "}])
    with pytest.raises(InputError, match=r"item 1: unsupported input type int"):
        as_items(["ok", 3])
    with pytest.raises(InputError, match=r"item 0: unknown item field\(s\) \['colour'\]"):
        as_items([{"text": "a", "colour": "red"}])
    with pytest.raises(InputError, match=r"unsupported file type '.docx'"):
        as_item(Path("report.docx"))


def test_image_sources(media_dir):
    raw = (media_dir / "red.png").read_bytes()
    uri = "data:image/png;base64," + base64.b64encode(raw).decode()
    from_path = load_image(media_dir / "red.png")
    for source in (str(media_dir / "red.png"), raw, uri, from_path):
        image = load_image(source)
        assert image.size == (72, 64) and image.mode == "RGB"
        assert list(image.getdata()) == list(from_path.getdata())


def test_image_errors_name_file_and_fix(media_dir):
    (media_dir / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match=r"file '.*broken.png': cannot decode image.*fix"):
        load_image(media_dir / "broken.png")
    with pytest.raises(InputError, match=r"file '.*missing.png': file not found"):
        load_image(media_dir / "missing.png")
    (media_dir / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="file is empty"):
        load_image(media_dir / "empty.png")
    with pytest.raises(InputError, match="remote URL .* not fetched"):
        load_image("https://example.com/cat.png")
    with pytest.raises(InputError, match="invalid base64"):
        load_image("data:image/png;base64,@@@")


def test_decompression_bomb_rejected_before_decoding(tmp_path):
    big = Image.new("L", (4000, 3000))
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    limits = MediaLimits(max_pixels=1_000_000)
    with pytest.raises(InputError, match=r"4000x3000 = 12000000 pixels, over the limit.*decompression bomb"):
        load_image(buffer.getvalue(), limits)


def test_file_size_limit(media_dir):
    with pytest.raises(InputError, match="over the limit of 10"):
        load_image(media_dir / "red.png", MediaLimits(max_file_bytes=10))


def test_video_sources_sample_uniformly(media_dir):
    assert uniform_indices(12, 4) == [0, 4, 7, 11]
    assert uniform_indices(3, 8) == [0, 1, 2]
    folder = load_video(media_dir / "clip", FramePolicy(num_frames=4))
    assert len(folder) == 4
    from_file = load_video(media_dir / "clip.mp4", FramePolicy(num_frames=4))
    assert len(from_file) == 4 and from_file[0].size == (64, 64)
    by_rate = load_video(media_dir / "clip.mp4", FramePolicy(num_frames=None, fps=1.0))
    assert len(by_rate) == 3  # 12 frames at 4 fps span 2.75 s -> 3 samples at 1 fps
    as_list = load_video([media_dir / "red.png", media_dir / "blue.jpg"], FramePolicy(num_frames=8))
    assert len(as_list) == 2
    capped = load_video(media_dir / "clip", FramePolicy(num_frames=None), MediaLimits(max_frames=5))
    assert len(capped) == 5
    assert len(load_video(media_dir / "clip", FramePolicy(num_frames=8, max_source_frames=6))) == 6


def test_video_errors(media_dir):
    (media_dir / "bad.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(InputError, match=r"file '.*bad.mp4': cannot decode video"):
        load_video(media_dir / "bad.mp4")
    (media_dir / "nothing").mkdir()
    with pytest.raises(InputError, match="frame folder holds no images"):
        load_video(media_dir / "nothing")
    with pytest.raises(InputError, match="video not found"):
        load_video(media_dir / "gone.mp4")


def test_pdf_pages(media_dir):
    pages = pdf_pages(media_dir / "doc.pdf", dpi=72)
    assert len(pages) == 2 and pages[0].mode == "RGB"
    assert pages[0].getpixel((60, 80))[0] > 200 and pages[1].getpixel((60, 80))[2] > 200
    (media_dir / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(InputError, match=r"file '.*bad.pdf': cannot open PDF"):
        pdf_pages(media_dir / "bad.pdf")


def test_content_key_tracks_content_and_instruction(media_dir):
    a = Item(text="x", image=str(media_dir / "red.png"))
    assert a.content_key() == Item(text="x", image=str(media_dir / "red.png")).content_key()
    assert a.content_key() != a.with_instruction("Find it").content_key()
    assert a.content_key() != Item(text="x", image=str(media_dir / "blue.jpg")).content_key()
    pil = Image.new("RGB", (4, 4), "red")
    assert Item(image=pil).content_key() == Item(image=pil.copy()).content_key()
