"""LLaVA-OneVision: uniembed's forward equals transformers' own (AnyRes tiles, newline tokens, pooled video)."""
from __future__ import annotations

import pytest
import torch

from uniembed import ConfigError, Embedder
from uniembed.models.backbones import packing
from uniembed.models.backbones.base import attention_bias

from backbone_checks import (assert_batch_invariant, assert_reranker_and_soup, assert_save_load_and_lora, assert_serves,
                             mismatches, parity_items, variant)


@pytest.fixture(scope="module")
def llava():
    torch.set_num_threads(1)
    return Embedder.tiny(family="llava_onevision")


def hf_hidden(model, batch):
    """transformers' LlavaOnevisionModel.forward on one unpadded item, pixels in its processor's layout:
    images (images, tiles, C, H, W) with `image_sizes` and `batch_num_images`, videos (1, frames, C, H, W)."""
    kwargs = {}
    if "image_pixel_values" in batch:
        grids = batch["image_grid_thw"]
        kwargs.update(pixel_values=batch["image_pixel_values"].view(len(grids), -1, *batch["image_pixel_values"].shape[1:]),
                      image_sizes=grids[:, 1:], batch_num_images=torch.tensor([len(grids)]))
    if "video_pixel_values" in batch:
        kwargs.update(pixel_values_videos=batch["video_pixel_values"][None])
    with torch.no_grad():
        out = model.backbone.model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                          use_cache=False, **kwargs)
    return out.last_hidden_state[0]


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_hidden_states_equal_transformers_forward(llava, media_dir, padding_side):
    errors = mismatches(variant(llava, padding_side=padding_side), media_dir, hf_hidden)
    assert max(errors.values()) < 1e-4, errors


def test_parity_fails_when_positions_or_mask_are_wrong(llava, media_dir, monkeypatch):
    """(RoPE is relative, so only positions with wrong spacing matter: a constant shift is harmless.)"""
    def spread(input_ids, attention_mask, visuals, config):
        return 2 * (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    monkeypatch.setattr(llava.backbone, "position_ids", spread)
    assert min(mismatches(llava, media_dir, hf_hidden, ["text", "image"]).values()) > 1e-3
    monkeypatch.undo()
    monkeypatch.setattr(packing, "forward_mask",
                        lambda mask, attention, config, dtype: attention_bias(torch.ones_like(mask), attention, dtype))
    assert mismatches(variant(llava, padding_side="left"), media_dir, hf_hidden, ["text", "short"])["short"] > 1e-3


def test_token_forms(llava, media_dir):
    """A lone image is tiled (base tile + grid rows with newlines); one of two is a base tile + newline;
    a video is frames x 2x2-pooled tile + one newline."""
    backbone = llava.backbone
    items = parity_items(media_dir)
    lone = backbone.item_tokens(llava.decode(items["image"]), llava.config)[2][0]
    pair = backbone.item_tokens(llava.decode(items["two_images"]), llava.config)[2]
    video = backbone.item_tokens(llava.decode(items["video_frames"]), llava.config)[2][0]
    assert lone.grid_thw[0] > 1 and lone.num_tokens > 16 + 1
    assert [v.num_tokens for v in pair] == [16 + 1, 16 + 1]
    assert video.num_tokens == 4 * 2 * 2 + 1


def test_mrope_refused_with_a_clear_message(llava):
    with pytest.raises(ConfigError, match="1-D RoPE; set positions='1d'"):
        variant(llava, positions="mrope").encode(["hello"])


@pytest.mark.parametrize("overrides", [
    {"padding_side": "left"},
    {"padding_side": "right", "attention": "bidirectional", "pooling": "mean_no_instruction"},
    {"padding_side": "left", "pooling": "eos", "video_as_images": True},
])
def test_embedding_independent_of_batch(llava, media_dir, overrides):
    assert_batch_invariant(variant(llava, **overrides), list(parity_items(media_dir).values()))


def test_save_load_identical_and_lora_adapter_loads(llava, media_dir, tmp_path):
    items = [parity_items(media_dir)[k] for k in ("text", "image", "two_images")]
    assert_save_load_and_lora(llava, items, tmp_path)
    llava.backbone.save(tmp_path / "plain")
    assert Embedder.from_pretrained(tmp_path / "plain").config.positions == "1d"  # the family's default


def test_reranker_and_soup(tmp_path):
    assert_reranker_and_soup("llava_onevision", tmp_path)


def test_serves_embeddings():
    assert_serves(Embedder.tiny(family="llava_onevision"))
