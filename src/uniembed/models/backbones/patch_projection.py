"""Run a vision tower's patch embedding as the matrix product it is.

Qwen2-VL, Qwen2.5-VL and Qwen3-VL embed each patch with an `nn.Conv3d` whose kernel equals its stride and whose
input is exactly one kernel-sized patch (transformers `modeling_qwen2_vl.py` `PatchEmbed.forward`: the pixels are
viewed as `(-1, channels, temporal_patch_size, patch_size, patch_size)`). Such a convolution computes one dot
product per patch and output channel, so it equals `F.linear` on the flattened patch with the weight viewed as
`(out_channels, channels * t * h * w)`. On CPU oneDNN's 3-D convolution costs several times the GEMM (a tiny
Qwen2-VL training step: 7.3 ms forward for 1,152 patches, most of 8% of the step with its backward), and on
some GPU/dtype pairs far more (huggingface/transformers#45750).

transformers offers the same product (`fusion_config={"patch_embeddings": True}`, `transformers/fusion_mapping.py`,
v5.17+), but it renames the weight to `patch_embed.linear_proj` and patches module classes for the whole process.
Here the `Conv3d` keeps its parameters and names, so checkpoints, LoRA targets, FSDP shards and exports are
unchanged; only its forward is the product (vLLM runs these layers as linear too, vllm-project/vllm#27418).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class PatchProjection(nn.Conv3d):
    """An `nn.Conv3d` with kernel == stride that multiplies whole-patch inputs instead of convolving them.

    Any other input shape (more than one patch along a dimension) runs the ordinary convolution."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - nn.Conv3d's own argument name
        if input.dim() != 5 or tuple(input.shape[2:]) != tuple(self.kernel_size):
            return super().forward(input)
        flat = F.linear(input.reshape(input.shape[0], -1), self.weight.reshape(self.out_channels, -1), self.bias)
        return flat.reshape(input.shape[0], self.out_channels, 1, 1, 1)


def is_patchwise(module: nn.Module) -> bool:
    """True for a plain `nn.Conv3d` that sees each input element once (kernel == stride, no padding/dilation/groups)."""
    return (type(module) is nn.Conv3d and tuple(module.kernel_size) == tuple(module.stride)
            and tuple(module.padding) == (0, 0, 0) and tuple(module.dilation) == (1, 1, 1) and module.groups == 1
            and module.padding_mode == "zeros")


def project_patches_linearly(model: Any) -> int:
    """Give every patch-wise `nn.Conv3d` of `model` the linear forward (in place; parameters untouched).

    Returns how many modules changed. Non-Qwen towers (LLaVA-OneVision's SigLIP uses a 2-D convolution over the
    whole image) have none and are left as they are."""
    changed = 0
    for module in model.modules():
        if is_patchwise(module):
            module.__class__ = PatchProjection
            changed += 1
    return changed
