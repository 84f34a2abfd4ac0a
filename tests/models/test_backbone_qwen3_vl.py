"""Qwen3-VL: uniembed's forward equals transformers' own (DeepStack, interleaved M-RoPE, timestamped video)."""
from __future__ import annotations

import pytest
import torch

from uniembed import Embedder, Item
from uniembed.models.backbones import packing
from uniembed.models.backbones.base import attention_bias

from backbone_checks import (assert_batch_invariant, assert_reranker_and_soup, assert_save_load_and_lora, assert_serves,
                             mismatches, parity_items, variant)


@pytest.fixture(scope="module")
def qwen3():
    torch.set_num_threads(1)
    return Embedder.tiny(family="qwen3_vl")


def hf_hidden(model, batch):
    """transformers' Qwen3VLModel on one unpadded item: it computes M-RoPE (get_rope_index) and the mask itself."""
    config = model.backbone.model.config
    types = torch.zeros_like(batch["input_ids"])
    types[batch["input_ids"] == config.image_token_id] = 1
    types[batch["input_ids"] == config.video_token_id] = 2
    kwargs = {}
    if "image_pixel_values" in batch:
        kwargs.update(pixel_values=batch["image_pixel_values"], image_grid_thw=batch["image_grid_thw"])
    if "video_pixel_values" in batch:
        kwargs.update(pixel_values_videos=batch["video_pixel_values"], video_grid_thw=batch["video_grid_thw"])
    with torch.no_grad():
        out = model.backbone.model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                          mm_token_type_ids=types, use_cache=False, **kwargs)
    return out.last_hidden_state[0]


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_hidden_states_equal_transformers_forward(qwen3, media_dir, padding_side):
    errors = mismatches(variant(qwen3, padding_side=padding_side), media_dir, hf_hidden)
    assert max(errors.values()) < 1e-4, errors


def test_parity_fails_when_positions_or_mask_are_wrong(qwen3, media_dir, monkeypatch):
    """The comparison above is sensitive: 1-D positions break visual items, a mask ignoring padding breaks rows."""
    errors = mismatches(variant(qwen3, positions="1d"), media_dir, hf_hidden)
    assert errors["text"] < 1e-4 and min(errors[k] for k in ("image", "two_images", "video_frames")) > 1e-3
    monkeypatch.setattr(packing, "forward_mask",
                        lambda mask, attention, config, dtype: attention_bias(torch.ones_like(mask), attention, dtype))
    errors = mismatches(qwen3, media_dir, hf_hidden, ["text", "short"])
    assert errors["short"] > 1e-3


def test_video_blocks_carry_timestamps(qwen3, media_dir):
    """One `<t seconds>` + vision block per temporal patch; a video file's frames keep their decoded times."""
    decoded = qwen3.decode(Item(video=str(media_dir / "clip.mp4")))
    visual = decoded.videos[0]
    assert [frame.info["seconds"] for frame in visual] == [0.0, 1.0, 1.75, 2.75]  # frames 0, 4, 7, 11 at 4 fps
    text = qwen3.backbone.tokenizer.decode(qwen3.backbone.item_tokens(decoded, qwen3.config)[0])
    # two temporal patches, each stamped with the mean time of its two frames
    assert text.count("<|vision_start|>") == 2 and "<0.5 seconds><|vision_start|>" in text
    assert "<2.2 seconds><|vision_start|>" in text
    folder = qwen3.backbone.tokenizer.decode(qwen3.backbone.item_tokens(
        qwen3.decode(Item(video=str(media_dir / "clip"))), qwen3.config)[0])
    assert "<0.2 seconds>" in folder  # frames without timestamps: 2 fps assumed (mean of frames 0 and 1)


@pytest.mark.parametrize("overrides", [
    {"padding_side": "left"},
    {"padding_side": "right", "attention": "bidirectional", "pooling": "mean_no_instruction"},
    {"padding_side": "left", "pooling": "eos", "positions": "1d", "video_as_images": True},
])
def test_embedding_independent_of_batch(qwen3, media_dir, overrides):
    assert_batch_invariant(variant(qwen3, **overrides), list(parity_items(media_dir).values()))


def test_save_load_identical_and_lora_adapter_loads(qwen3, media_dir, tmp_path):
    items = [parity_items(media_dir)[k] for k in ("text", "image", "video_frames")]
    assert_save_load_and_lora(qwen3, items, tmp_path)
    plain = tmp_path / "plain"
    qwen3.backbone.save(plain)
    loaded = Embedder.from_pretrained(plain)
    assert loaded.config.min_pixels == 4 * 32 * 32 and loaded.config.positions == "mrope"


def test_tiny_spec_and_geometry():
    from uniembed import Embedder

    model = Embedder.from_pretrained("tiny:qwen3_vl:tiny:3")
    vision = model.backbone.model.config.vision_config
    assert model.backbone.model.config.model_type == "qwen3_vl" and model.source == "tiny:qwen3_vl:tiny:seed=3"
    assert (vision.patch_size, vision.spatial_merge_size, list(vision.deepstack_visual_indexes)) == (16, 2, [0])
    assert model.backbone.model.config.text_config.rope_parameters["mrope_interleaved"] is True


def test_reranker_and_soup(tmp_path):
    assert_reranker_and_soup("qwen3_vl", tmp_path)


def test_tiny_specs_parse_family_size_and_seed():
    from uniembed.models.tiny import parse_tiny_spec

    assert parse_tiny_spec("tiny") == ("qwen2_vl", "tiny", 0)
    assert parse_tiny_spec("tiny:small:2") == ("qwen2_vl", "small", 2)
    assert parse_tiny_spec("tiny:qwen3_vl") == ("qwen3_vl", "tiny", 0)
    assert parse_tiny_spec("tiny:llava_onevision:mini:5") == ("llava_onevision", "mini", 5)


def test_serves_embeddings():
    assert_serves(Embedder.tiny(family="qwen3_vl"))
