"""Qwen-VL pixel patches: resized uint8 frames -> normalised flat patches, in the vision tower's layout.

The same numbers as resizing, scaling to [0, 1], normalising and then cutting patches in float32 (the layout
transformers' Qwen2-VL image processor writes, `Qwen2VLImageProcessorPil`), but cheaper: the patch reordering
moves uint8 bytes, not float32 values, and an image (one frame) is normalised once and then copied into its
temporal patch instead of normalising the repeated frame again. Each value is computed by the same float32
operations as before (`value / 255`, `- mean`, `/ std`, each correctly rounded), so the result is bit-identical.
"""
from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Patches:
    """One image's or video's patches as uint8 bytes already in the final layout, normalised to float32 only when
    written into the batch (`write`, `stack_pixels`): a batch's pixels are then written once, where a float32
    tensor per image followed by `torch.cat` wrote them twice; the read-ahead holds a quarter of the bytes or less."""

    ordered: np.ndarray  # (grid_t, grid_h / merge, grid_w / merge, merge, merge, C, slots, patch, patch) uint8
    mean: tuple[float, ...]
    std: tuple[float, ...]
    temporal: int

    @property
    def shape(self) -> tuple[int, int]:
        grid_t, blocks_h, blocks_w, merge, _, channels, _, patch, _ = self.ordered.shape
        return grid_t * blocks_h * blocks_w * merge * merge, channels * self.temporal * patch * patch

    def write(self, out: torch.Tensor) -> None:
        """Normalise into `out` (a contiguous float32 tensor of `shape`): `value / 255`, `- mean`, `/ std`."""
        ordered = torch.from_numpy(self.ordered)
        channels, slots = self.ordered.shape[5], self.ordered.shape[6]
        shape = (1, 1, 1, 1, 1, channels, 1, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(shape)
        std = torch.tensor(self.std, dtype=torch.float32).view(shape)
        if slots == self.temporal:
            values = out.view(ordered.shape)
            values.copy_(ordered)
        else:  # one frame fills every temporal slot: normalise it once, then a 4-D broadcast copy (several times
            values = ordered.to(torch.float32)  # faster in torch than the 9-D one)
        values.div_(255.0).sub_(mean).div_(std)
        if slots != self.temporal:
            rows = out.shape[0]
            flat = values.reshape(rows, channels, 1, -1)
            out.view(rows, channels, self.temporal, -1).copy_(flat.expand(-1, -1, self.temporal, -1))

    def tensor(self) -> torch.Tensor:
        out = torch.empty(self.shape, dtype=torch.float32)
        self.write(out)
        return out


def stack_pixels(pixels: list[torch.Tensor | Patches]) -> torch.Tensor:
    """The rows of every image or video of a batch in one float32 tensor (`torch.cat`, patches normalised in place)."""
    if all(isinstance(p, torch.Tensor) for p in pixels):
        return torch.cat(pixels, dim=0)
    out = torch.empty((sum(p.shape[0] for p in pixels), pixels[0].shape[1]), dtype=torch.float32)
    start = 0
    for p in pixels:
        part = out[start: start + p.shape[0]]
        if isinstance(p, Patches):
            p.write(part)
        else:
            part.copy_(p)
        start += p.shape[0]
    return out


def ordered_patches(frames: np.ndarray, mean: tuple[float, ...] | list[float], std: tuple[float, ...] | list[float],
                    temporal: int, patch: int, merge: int) -> tuple[Patches, tuple[int, int, int]]:
    """(T, H, W, C) uint8 -> (`Patches` of (grid_t * grid_h * grid_w, C * temporal * patch ** 2), (grid_t, grid_h,
    grid_w)).

    Frames are padded to a multiple of `temporal` by repeating the last one; rows run over merge windows
    (grid_t, grid_h / merge, grid_w / merge, merge, merge) and columns over (C, temporal, patch, patch)."""
    count, height, width, channels = frames.shape
    grid_h, grid_w = height // patch, width // patch
    repeat_only = count == 1  # one frame fills every temporal slot: kept once, repeated when written
    if not repeat_only and count % temporal:
        frames = np.concatenate([frames, np.repeat(frames[-1:], temporal - count % temporal, axis=0)])
    slots = 1 if repeat_only else temporal
    grid_t = 1 if repeat_only else frames.shape[0] // temporal
    cut = frames.reshape(grid_t, slots, grid_h // merge, merge, patch, grid_w // merge, merge, patch, channels)
    ordered = np.ascontiguousarray(cut.transpose(0, 2, 5, 3, 6, 8, 1, 4, 7))  # uint8, the final layout
    return Patches(ordered, tuple(mean), tuple(std), temporal), (grid_t, grid_h, grid_w)


def normalised_patches(frames: np.ndarray, mean: tuple[float, ...] | list[float], std: tuple[float, ...] | list[float],
                       temporal: int, patch: int, merge: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """`ordered_patches` normalised now: ((grid_t * grid_h * grid_w, C * temporal * patch ** 2) float32, grid)."""
    patches, grid = ordered_patches(frames, mean, std, temporal, patch, merge)
    return patches.tensor(), grid
