"""`SentenceTransformer(exported_dir)` (the real sentence-transformers package) embeds as `Embedder.encode` does.

transformers' Qwen-VL processors load a torchvision video processor, and PyPI's torchvision does not import beside
the CPU torch 2.13 wheel ("operator torchvision::nms does not exist"): these tests need a torch/torchvision pair
that imports together (here: torch 2.14.1 + torchvision 0.29.1, which run on CPU and GPU alike) and skip, saying so,
where there is none.
"""
from __future__ import annotations

import pytest
from PIL import Image

from interop_helpers import cosine, needs_torchvision

from uniembed.inputs import Item
from uniembed.models.embedder import Embedder


pytestmark = needs_torchvision

RED = Image.new("RGB", (64, 48), (200, 30, 30))
BLUE = Image.new("RGB", (40, 40), (0, 0, 255))
FRAMES = [Image.new("RGB", (64, 48), (i * 60, 30, 30)) for i in range(4)]



def pairs(fps: float) -> dict:
    """sentence-transformers input -> the uniembed item it must embed like (video frames with their fps, which
    Qwen3-VL's timestamps need: sentence_transformers/base/modality.py _unwrap_video `video_metadata`)."""
    video = {"array": FRAMES, "video_metadata": {"fps": fps, "total_num_frames": 4, "frames_indices": [0, 1, 2, 3]}}
    return {
        "text": ("a red circle", Item("a red circle")),
        "image": ({"image": RED}, Item(None, image=RED)),
        "text+image": ({"text": "a red circle", "image": RED}, Item("a red circle", image=RED)),
        "two images": ({"text": "two", "image": [RED, BLUE]}, Item("two", images=[RED, BLUE])),
        "video": ({"video": video}, Item(None, video=FRAMES)),
    }


@pytest.fixture(scope="module", params=[("qwen2_vl", None), ("qwen2_vl", "gme"), ("qwen2_vl", "unite"),
                                                  ("qwen3_vl", "qwen3-vl-embedding")],
                ids=lambda case: ":".join(filter(None, case)))
def exported(request, tmp_path_factory):
    from sentence_transformers import SentenceTransformer

    family, profile = request.param
    model = Embedder.tiny(family=family, profile=profile,
                          prompts={"query": "Find the matching image.", "document": ""})
    directory = tmp_path_factory.mktemp(family)
    model.save_pretrained(directory)
    return family, model, SentenceTransformer(str(directory), device="cpu")


# Known gaps, measured by `make test-interop` (torch 2.14.1, torchvision 0.29.1, transformers 5.17.0 and 5.23.0,
# sentence-transformers 6.3.0) after the profiles merge: strict, so a fix turns them into a failure to remove here.
# `models.interop.exportable` names both, so `uniembed export` warns and reports "faithful": false for them.
PRE_RESIZE = ("the profile's pre_resize (fetch_image's smart_resize to 28-px multiples before the processor) is not "
              "in the exported processor config: uniembed resizes a 64x48 image to 56x56 (grid 32x32), "
              "sentence-transformers' processor to grid 28x38; 'two images' cosine 0.99985 (gme), 0.99980 (unite)")
FRAME_FLOOR = ("the profile's 128-token per-frame floor is not honoured: Qwen3VLVideoProcessor applies "
               "size.shortest_edge to the whole clip (t*h*w) and cap_pixels_per_frame caps only the maximum; four "
               "64x48 frames: uniembed grid 2x20x28, sentence-transformers 2x10x14; 'video' cosine 0.9253")
KNOWN_GAPS = {("qwen2_vl", "gme"): PRE_RESIZE, ("qwen2_vl", "unite"): PRE_RESIZE, ("qwen3_vl", "qwen3-vl-embedding"): FRAME_FLOOR}


def test_sentence_transformers_embeds_like_uniembed(exported, request):
    family, model, st = exported
    gap = KNOWN_GAPS.get((family, model.config.profile))
    if gap:
        request.applymarker(pytest.mark.xfail(strict=True, reason=gap))
    for name, (st_input, item) in pairs(model.config.frames.list_fps or model.config.frames.fps or 2.0).items():
        assert cosine(st.encode([st_input])[0], model.encode([item])[0]) >= 0.9999, (family, name)


def test_encode_query_and_document_apply_the_profile_prompts(exported):
    _, model, st = exported
    assert st.prompts["query"] == "Find the matching image."
    assert cosine(st.encode_query(["a red circle"])[0], model.encode_query(["a red circle"])[0]) >= 0.9999
    assert cosine(st.encode_document(["a red circle"])[0], model.encode_document(["a red circle"])[0]) >= 0.9999
    # the prompt changes the vector: encode_query is not encode
    assert cosine(st.encode_query(["a red circle"])[0], st.encode(["a red circle"])[0]) < 0.9999



@pytest.mark.parametrize("family,profile", [
    ("qwen2_vl", None),
    pytest.param("qwen3_vl", "qwen3-vl-embedding", marks=pytest.mark.xfail(
        strict=True, reason="video cosine 0.9971 (not diagnosed; the Qwen3-VL video sizing above is the suspect)"))])
def test_large_frames_keep_the_per_frame_pixel_bound(family, profile, tmp_path):
    """Frames over the profile's per-frame bound are shrunk alike (Qwen3-VL's processor bounds the whole clip
    unless `cap_pixels_per_frame` is set: measured 0.8895 without it)."""
    from sentence_transformers import SentenceTransformer

    model = Embedder.tiny(family=family, profile=profile, video_max_pixels=64 * 1024, max_pixels=96 * 1024)
    model.save_pretrained(tmp_path)
    st = SentenceTransformer(str(tmp_path), device="cpu")
    frames = [Image.new("RGB", (640, 480), (i * 60, 30, 30)) for i in range(4)]
    for i, frame in enumerate(frames):
        frame.paste((0, 200, 0), (50 * i, 40, 50 * i + 100, 140))
    video = {"array": frames, "video_metadata": {"fps": model.config.frames.list_fps or model.config.frames.fps or 2.0, "total_num_frames": 4,
                                                 "frames_indices": [0, 1, 2, 3]}}
    assert cosine(st.encode([{"video": video}])[0], model.encode([Item(None, video=frames)])[0]) >= 0.9999
    assert cosine(st.encode([{"image": frames[1]}])[0], model.encode([Item(None, image=frames[1])])[0]) >= 0.9999
