"""`Backbone.estimate_tokens` against the real token form on tiny models of every family.

The estimate reads only image headers, yet its visual part must be exact: for items that differ only in
their media, `true length - estimate` is one constant (the chat template's fixed tokens), so sorting by the
estimate sorts by the true length. The visual token counts are also checked against transformers' own
geometry: Qwen's image processor grid, LLaVA-OneVision's vision tower features.
"""
import pytest
import torch
from PIL import Image

from uniembed.inputs import Item
from uniembed.models.embedder import Embedder
from uniembed.models.tiny import TINY_FAMILIES

SIZES = [(64, 64), (200, 120), (37, 300), (640, 480), (1000, 700), (2000, 1500)]  # (width, height)


@pytest.fixture(scope="module", params=TINY_FAMILIES)
def model(request):
    return Embedder.tiny(family=request.param)


def true_length(model, item):
    ids, _, _ = model.backbone.item_tokens(model.decode(item), model.config)
    return len(ids)


def image_file(tmp_path, size):
    path = tmp_path / f"{size[0]}x{size[1]}.png"
    Image.new("RGB", size, (120, 30, 200)).save(path)
    return str(path)


def test_image_estimate_is_exact_up_to_the_template(model, tmp_path):
    items = [Item(image=image_file(tmp_path, size)) for size in SIZES]
    gaps = {true_length(model, item) - model.estimate_tokens(item) for item in items}
    assert len(gaps) == 1 and gaps.pop() >= 0
    estimates = [model.estimate_tokens(item) for item in items]
    assert len(set(estimates)) > 2  # images are counted at their resized size, not all at the budget's maximum


def test_several_images_and_an_image_with_text(model, tmp_path):
    one = Item(image=image_file(tmp_path, (64, 64)))
    base = true_length(model, one) - model.estimate_tokens(one)
    pair = Item(images=[image_file(tmp_path, (640, 480)), image_file(tmp_path, (37, 300))])
    assert true_length(model, pair) - model.estimate_tokens(pair) == base
    captioned = Item(text="a photograph of a purple square " * 4, image=image_file(tmp_path, (200, 120)))
    assert abs(true_length(model, captioned) - model.estimate_tokens(captioned) - base) <= 20  # text: chars / 3


def test_video_estimate_is_exact_at_the_frame_budget_and_an_upper_bound_below_it(model):
    """Frames are not decoded for the estimate: a video counts at the per-frame budget's maximum."""
    still = Item(image=Image.new("RGB", (64, 64)))
    template = true_length(model, still) - model.estimate_tokens(still)
    for size, exact in (((1280, 1280), True), ((1280, 960), False), ((96, 64), False)):
        video = Item(video=[Image.new("RGB", size, (10 * i, 40, 90)) for i in range(model.config.frames.num_frames)])
        gap = true_length(model, video) - model.estimate_tokens(video)
        assert gap == template if exact else gap <= template


def test_visual_tokens_match_transformers_geometry(model):
    backbone, config = model.backbone, model.config
    for size in SIZES:
        image = Image.new("RGB", size)
        if config.positions == "1d" and hasattr(backbone, "anyres_tokens"):  # LLaVA-OneVision: the tower's features
            batch = model.collate([model.decode(Item(image=image))])
            with torch.inference_mode():
                features = backbone._image_features(batch, backbone.hf_model.dtype)
            assert backbone.image_tokens([size], 0, config) == features.shape[0]
        else:  # Qwen2-VL / Qwen3-VL: the checkpoint's image processor grid, one token per merged patch
            out = backbone.image_processor(images=[image], return_tensors="pt",
                                           size={"shortest_edge": config.min_pixels, "longest_edge": config.max_pixels})
            grid = int(out["image_grid_thw"].prod()) // backbone.merge_size ** 2
            assert backbone.grid_tokens(size, config.min_pixels, config.max_pixels) == grid


def test_estimate_reads_headers_not_pixels(model, tmp_path, monkeypatch):
    path = image_file(tmp_path, (640, 480))
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("the estimate decoded pixels"))
    assert model.estimate_tokens(Item(image=path)) > 0
