"""Qwen-VL pixel patches: resized uint8 frames -> normalised flat patches, in the vision tower's layout.

The same numbers as resizing, scaling to [0, 1], normalising and then cutting patches in float32 (the layout
transformers' Qwen2-VL image processor writes, `Qwen2VLImageProcessorPil`), but cheaper: the patch reordering
moves uint8 bytes, not float32 values, and an image (one frame) is normalised once and then copied into its
temporal patch instead of normalising the repeated frame again. Each value is computed by the same float32
operations as before (`value / 255`, `- mean`, `/ std`, each correctly rounded), so the result is bit-identical.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def resized_frames(frames: list[Image.Image], height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8: each RGB frame resized to `height` x `width` with PIL's bicubic filter."""
    arrays = []
    for index, frame in enumerate(frames):
        if frame.mode != "RGB":  # decoding converts every image; a direct caller must too
            raise ValueError(f"frame {index} has mode {frame.mode!r}; convert it to RGB first (image.convert('RGB'))")
        arrays.append(np.asarray(frame.resize((width, height), resample=Image.BICUBIC)))
    return np.stack(arrays)


def normalised_patches(frames: np.ndarray, mean: tuple[float, ...] | list[float], std: tuple[float, ...] | list[float],
                       temporal: int, patch: int, merge: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """(T, H, W, C) uint8 -> ((grid_t * grid_h * grid_w, C * temporal * patch ** 2) float32, (grid_t, grid_h, grid_w)).

    Frames are padded to a multiple of `temporal` by repeating the last one; rows run over merge windows
    (grid_t, grid_h / merge, grid_w / merge, merge, merge) and columns over (C, temporal, patch, patch)."""
    count, height, width, channels = frames.shape
    grid_h, grid_w = height // patch, width // patch
    repeat_only = count == 1  # one frame fills every temporal slot: normalise it once, copy it after
    if not repeat_only and count % temporal:
        frames = np.concatenate([frames, np.repeat(frames[-1:], temporal - count % temporal, axis=0)])
    slots = 1 if repeat_only else temporal
    grid_t = 1 if repeat_only else frames.shape[0] // temporal
    cut = frames.reshape(grid_t, slots, grid_h // merge, merge, patch, grid_w // merge, merge, patch, channels)
    ordered = np.ascontiguousarray(cut.transpose(0, 2, 5, 3, 6, 8, 1, 4, 7))  # uint8, the final layout
    shape = (1, 1, 1, 1, 1, channels, 1, 1, 1)
    values = torch.from_numpy(ordered).to(torch.float32).div_(255.0)
    values.sub_(torch.tensor(mean, dtype=torch.float32).view(shape))
    values.div_(torch.tensor(std, dtype=torch.float32).view(shape))
    rows = grid_t * grid_h * grid_w
    if repeat_only and temporal > 1:  # a 4-D broadcast copy: torch copies it several times faster than the 9-D one
        flat = values.reshape(rows, channels, 1, patch * patch)
        values = torch.empty(rows, channels, temporal, patch * patch).copy_(flat.expand(-1, -1, temporal, -1))
    return values.reshape(rows, channels * temporal * patch * patch), (grid_t, grid_h, grid_w)
