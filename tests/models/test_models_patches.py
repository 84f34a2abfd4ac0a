"""Qwen-VL pixel patches (`models/backbones/patches.py`) are bit-identical to the float pipeline they replace and
to transformers' PIL image processor (the pixels the published checkpoints were made with).

The reference below is the previous implementation, kept here as the definition: resize with PIL bicubic, scale
to [0, 1] and normalise in float32, repeat the last frame to fill the temporal patch, then cut patches.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from uniembed import Embedder, Item
from uniembed.models.backbones.patches import Patches, normalised_patches, stack_pixels
from uniembed.resize import pre_resized, smart_resize

RNG = np.random.default_rng(7)
SIZES = [(1, 1), (37, 300), (150, 100), (333, 777), (999, 1001)]  # (width, height): odd, tall, tiny, large


def reference_patches(backbone, frames: list[Image.Image], min_pixels: int, max_pixels: int):
    tp, p, m = backbone.temporal_patch_size, backbone.patch_size, backbone.merge_size
    height, width = smart_resize(frames[0].height, frames[0].width, p * m, min_pixels, max_pixels)
    mean = np.asarray(backbone.image_processor.image_mean, dtype=np.float32)[:, None, None]
    std = np.asarray(backbone.image_processor.image_std, dtype=np.float32)[:, None, None]
    scaled = [np.asarray(frame.resize((width, height), resample=Image.BICUBIC), dtype=np.float32).transpose(2, 0, 1)
              / 255.0 for frame in frames]
    array = np.stack([(frame - mean) / std for frame in scaled])
    if array.shape[0] % tp:
        array = np.concatenate([array, np.repeat(array[-1:], tp - array.shape[0] % tp, axis=0)])
    t, c, h, w = array.shape
    grid = (t // tp, h // p, w // p)
    patches = array.reshape(grid[0], tp, c, h // p // m, m, p, w // p // m, m, p).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return torch.from_numpy(np.ascontiguousarray(patches.reshape(grid[0] * grid[1] * grid[2], -1))), grid


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (size[1], size[0]) if channels is None else (size[1], size[0], channels)
    return Image.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8), mode)


@pytest.fixture(scope="module", params=[("qwen2_vl", "gme"), ("qwen3_vl", "qwen3-vl-embedding"), ("qwen2_vl", None)])
def model(request):
    family, profile = request.param
    return Embedder.tiny(family=family, profile=profile)


@pytest.mark.parametrize("size", SIZES)
def test_image_patches_equal_the_float_pipeline(model, size):
    backbone, config = model.backbone, model.config
    image = noise(size)
    visual = backbone.preprocess_image(image, config)
    expected, grid = reference_patches(backbone, [image], config.min_pixels, config.max_pixels)
    assert visual.grid_thw == grid and visual.pixel_values.dtype == torch.float32
    assert torch.equal(visual.pixel_values, expected)


@pytest.mark.parametrize("frames", [1, 2, 3, 4])
def test_video_patches_equal_the_float_pipeline(model, frames):
    backbone, config = model.backbone, model.config
    clip = [noise((97, 61)) for _ in range(frames)]
    low = config.video_min_pixels or config.min_pixels
    expected, grid = reference_patches(backbone, clip, low, max(low, config.video_max_pixels))
    visual = backbone.preprocess_video(clip, config)
    assert visual.grid_thw == grid and torch.equal(visual.pixel_values, expected)


def test_every_byte_value_of_every_channel_normalises_as_before():
    frame = np.tile(np.arange(280) % 256, (28, 1)).astype(np.uint8)  # 28 x 280 pixels: every value 0..255
    frames = np.stack([frame, 255 - frame, frame[:, ::-1]], -1)[None]  # each channel sees all 256 values
    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    got, grid = normalised_patches(frames, mean, std, temporal=2, patch=14, merge=2)
    scaled = frames.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    by_value = (scaled - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
    # every pixel value appears in the patches exactly as the float pipeline computes it
    assert grid == (1, 2, 20)
    assert np.array_equal(np.sort(got.numpy().reshape(-1)), np.sort(np.repeat(by_value.reshape(-1), 2)))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_decoded_items_of_every_mode_match_transformers_pil_processor(mode):
    """Through the door users take (decode converts to RGB), and against `Qwen2VLImageProcessorPil` itself."""
    model = Embedder.tiny(profile="gme")
    image = noise((311, 203), "RGBA" if mode == "RGBA" else ("L" if mode in ("L", "P") else "RGB"))
    image = image.convert("P") if mode == "P" else image
    batch = model.collate([model.decode(Item(image=image))])
    first = pre_resized(image.convert("RGB"), model.config.pre_resize)  # gme's fetch_image, then the processor
    processed = model.backbone.image_processor(
        images=[first], return_tensors="pt",
        size={"shortest_edge": model.config.min_pixels, "longest_edge": model.config.max_pixels})
    assert batch["image_grid_thw"].tolist() == processed["image_grid_thw"].tolist() == [[1, 26, 42]]
    assert torch.equal(batch["image_pixel_values"], processed["pixel_values"])


def test_a_frame_that_is_not_rgb_is_refused_with_the_fix():
    model = Embedder.tiny()
    with pytest.raises(ValueError, match=r"frame 0 has mode 'RGBA'.*convert\('RGB'\)"):
        model.backbone.preprocess_image(noise((64, 64), "RGBA"), model.config)


def test_a_batch_holds_each_visuals_patches_normalised_once_into_one_tensor(model):
    """`collate` writes every image's and video's uint8 patches straight into the batch tensor (no per-image float
    tensor, no `torch.cat`): the same bytes as concatenating each visual's float32 pixels."""
    backbone, config = model.backbone, model.config
    visuals = [backbone.preprocess_image(noise((150, 100)), config),
               backbone.preprocess_video([noise((97, 61)) for _ in range(3)], config),
               backbone.preprocess_image(noise((37, 300)), config)]
    assert all(isinstance(visual.pixels, Patches) for visual in visuals)
    expected = torch.cat([visual.pixel_values for visual in visuals])
    assert torch.equal(stack_pixels([visual.pixels for visual in visuals]), expected)
    images = [noise((150, 100)), noise((333, 777))]
    batch = backbone.collate([model.prepare(Item(image=image)) for image in images], config)
    expected = torch.cat([backbone.preprocess_image(pre_resized(image, config.pre_resize), config).pixel_values
                          for image in images])
    assert torch.equal(batch["image_pixel_values"], expected)
