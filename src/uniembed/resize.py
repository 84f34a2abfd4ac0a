"""Image sizes: Qwen2-VL's `smart_resize`, and the pre-resize some families' inference code does before the
processor's own (`EmbeddingConfig.pre_resize`, `FramePolicy.list_resize`).

GME, RzenEmbed, UNITE and Qwen3-VL-Embedding pass every image through qwen-vl-utils' `fetch_image` (or a copy
of it), which resizes it to multiples of 28 (32) pixels within its own bounds with PIL's default filter; the
processor then resizes that image again within the model's bounds. Both steps change pixels, and for images
under the processor's minimum also the grid, so a profile states the first step as data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from .errors import ConfigError, InputError


@dataclass(frozen=True)
class PreResize:
    """A resize the authors' code does before the processor's (qwen-vl-utils' `fetch_image`): to multiples of
    `factor` pixels with an area in [min_pixels, max_pixels], PIL bicubic (`pre_resized`)."""

    factor: int = 28
    min_pixels: int = 4 * 28 * 28
    max_pixels: int = 16384 * 28 * 28

    def __post_init__(self) -> None:
        if self.factor < 1 or not 0 < self.min_pixels <= self.max_pixels:
            raise ConfigError(f"pre_resize needs factor >= 1 and 0 < min_pixels <= max_pixels, got {self}")


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Dimensions divisible by `factor`, close to the original aspect, with area in [min_pixels, max_pixels]."""
    if max(height, width) / max(1, min(height, width)) > 200:
        raise InputError(f"aspect ratio of {width}x{height} is over 200; crop or pad the image")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def pre_resized(image: Image.Image, policy: PreResize | None) -> Image.Image:
    """`image` as the authors' `fetch_image` hands it to the processor: smart-resized within the policy's own
    bounds, with PIL's bicubic filter (`image.resize(size)`'s default); unchanged when there is no policy."""
    if policy is None:
        return image
    height, width = smart_resize(image.height, image.width, policy.factor, policy.min_pixels, policy.max_pixels)
    if (width, height) == image.size:
        return image
    return image.resize((width, height), resample=Image.BICUBIC)
