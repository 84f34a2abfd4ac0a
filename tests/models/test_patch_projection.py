"""The patch embedding runs as a matrix product (`models/backbones/patch_projection.py`), equal to the convolution."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from uniembed.inputs import Item
from uniembed.models.backbones.patch_projection import PatchProjection, is_patchwise, project_patches_linearly
from uniembed.models.embedder import Embedder


@pytest.mark.parametrize("bias", [False, True])  # Qwen2-VL has none, Qwen3-VL has one
@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_projection_equals_the_convolution_and_its_gradients(bias, dtype, tolerance):
    torch.manual_seed(0)
    conv = nn.Conv3d(3, 16, kernel_size=(2, 14, 14), stride=(2, 14, 14), bias=bias, dtype=dtype)
    patches = torch.randn(37, 3, 2, 14, 14, dtype=dtype)
    expected = conv(patches)
    expected.square().sum().backward()
    expected_grads = [p.grad.clone() for p in conv.parameters()]
    conv.zero_grad()
    assert project_patches_linearly(conv) == 1 and type(conv) is PatchProjection
    got = conv(patches)
    got.square().sum().backward()
    assert got.shape == expected.shape == (37, 16, 1, 1, 1)
    torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance)
    for grad, expected_grad in zip((p.grad for p in conv.parameters()), expected_grads):
        scale = expected_grad.abs().max().item()  # weight gradients sum 37 patches: float32 rounds at their scale
        torch.testing.assert_close(grad, expected_grad, rtol=tolerance, atol=tolerance * scale)


def test_inputs_larger_than_one_patch_still_convolve():
    conv = nn.Conv3d(3, 4, kernel_size=(2, 2, 2), stride=(2, 2, 2), dtype=torch.float64)
    volume = torch.randn(1, 3, 4, 6, 6, dtype=torch.float64)
    expected = conv(volume)
    project_patches_linearly(conv)
    torch.testing.assert_close(conv(volume), expected, rtol=0, atol=0)


def test_only_patchwise_convolutions_are_changed():
    overlapping = nn.Conv3d(3, 4, kernel_size=3, stride=1)
    padded = nn.Conv3d(3, 4, kernel_size=2, stride=2, padding=1)
    conv2d = nn.Conv2d(3, 4, kernel_size=14, stride=14)  # SigLIP's, over the whole image
    assert not any(is_patchwise(m) for m in (overlapping, padded, conv2d))
    assert project_patches_linearly(nn.Sequential(overlapping, padded, conv2d)) == 0


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_qwen_backbones_embed_images_as_before_with_unchanged_weight_names(family, tmp_path):
    from PIL import Image

    embedder = Embedder.tiny(seed=3, family=family)
    model = embedder.backbone.hf_model
    projections = [name for name, m in model.named_modules() if type(m) is PatchProjection]
    assert len(projections) == 1 and projections[0].endswith("patch_embed.proj")
    assert any(name.endswith("patch_embed.proj.weight") for name in model.state_dict())
    path = tmp_path / "scene.png"
    Image.effect_mandelbrot((97, 61), (-2, -1, 1, 1), 40).convert("RGB").save(path)
    items = [Item(image=str(path), text="a scene"), Item(image=str(path))]
    projected = embedder.encode(items, batch_size=2)
    for name in projections:
        model.get_submodule(name).__class__ = nn.Conv3d
    convolved = embedder.encode(items, batch_size=2)
    assert abs(projected - convolved).max() < 1e-5
