"""The Embedder: batch-invariant embeddings, exact save/load, correct positions and attention."""
from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

from uniembed import ConfigError, Embedder, InputError, Item
from uniembed.models.backbones.base import attention_bias



def mixed_items(media_dir):
    return [
        "a red circle left of a blue square",
        {"image": str(media_dir / "red.png")},
        {"text": "what colour is the shape?", "image": str(media_dir / "blue.jpg"), "instruction": "Answer the question"},
        {"images": [str(media_dir / "red.png"), str(media_dir / "blue.jpg")], "text": "which differs?"},
        {"video": str(media_dir / "clip"), "text": "a green ball moving right"},
        {"video": str(media_dir / "clip.mp4")},
        "hi",
        {"text": "Represent the given sentence", "instruction": "Retrieve a caption"},
    ]


def variant(embedder, **overrides):
    return Embedder(embedder.backbone, embedder.config.replace(**overrides))


@pytest.mark.parametrize("overrides", [
    {"padding_side": "left"},
    {"padding_side": "right"},
    {"padding_side": "right", "attention": "bidirectional", "pooling": "mean_no_instruction"},
    {"padding_side": "left", "pooling": "eos", "positions": "1d"},
    {"padding_side": "left", "pooling": "mean", "video_as_images": True},
])
def test_embedding_independent_of_batch(tiny_embedder, media_dir, overrides):
    model = variant(tiny_embedder, **overrides)
    items = mixed_items(media_dir)
    alone = np.stack([model.encode([item])[0] for item in items])
    together = model.encode(items, batch_size=len(items))
    in_pairs = model.encode(items, batch_size=2)
    order = np.random.default_rng(0).permutation(len(items))
    shuffled = model.encode([items[i] for i in order], batch_size=3)
    np.testing.assert_allclose(together, alone, atol=1e-4)
    np.testing.assert_allclose(in_pairs, alone, atol=1e-4)
    np.testing.assert_allclose(shuffled, alone[order], atol=1e-4)
    assert together.dtype == np.float32 and together.shape == (len(items), model.dimension)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # different content really gives different vectors
    assert np.abs(together[0] - together[6]).max() > 1e-3


def test_length_grouped_forward_equals_one_padded_batch_in_order_and_gradient(tiny_embedder, media_dir):
    """Training's forward in groups of similar length (less padding) gives the rows of one padded batch, in the
    caller's order, and the same gradients."""
    from uniembed.models.embedder import EmbeddingModule
    from uniembed.models.length_groups import LengthGroups

    module = EmbeddingModule(tiny_embedder.backbone, tiny_embedder.config)
    items = [Item(text="a red circle left of a blue square " * k) for k in (1, 6, 2, 9)] + [
        tiny_embedder.resolve_items([value])[0] for value in mixed_items(media_dir)]
    prepared = [tiny_embedder.prepare(item, i) for i, item in enumerate(items)]
    grouped = tiny_embedder.collate_by_length(prepared)
    assert isinstance(grouped, LengthGroups) and len(grouped.batches) > 1
    assert sorted(grouped.positions) == list(range(len(items)))
    padded = sum(b["attention_mask"].numel() for b in grouped.batches)
    assert padded < tiny_embedder.collate(prepared)["attention_mask"].numel()

    def embed_and_grad(batch):
        module.zero_grad()
        out = module(batch)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        return out.detach(), [p.grad.clone() for p in module.parameters() if p.grad is not None]

    together, grads = embed_and_grad(tiny_embedder.collate(prepared))
    in_groups, grouped_grads = embed_and_grad(grouped)
    torch.testing.assert_close(in_groups, together, atol=1e-5, rtol=1e-4)
    assert len(grads) == len(grouped_grads)
    for a, b in zip(grads, grouped_grads):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-3)


def test_length_groups_cut_where_padding_would_exceed_the_limit():
    from uniembed.models.length_groups import length_groups

    lengths = [10, 100, 12, 95, 50, 11, 98, 52, 49, 13]
    groups = length_groups(lengths, max_padding=0.3, min_size=2)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert [[lengths[i] for i in g] for g in groups] == [[100, 98, 95], [52, 50, 49], [13, 12, 11, 10]]
    assert len(length_groups(lengths, max_padding=0.3, min_size=8)) == 2  # the first group takes 8 rows
    assert length_groups([], 0.3, 8) == []


def test_save_and_load_identical(tiny_embedder, media_dir, tmp_path):
    model = variant(tiny_embedder, pooling="mean", prompts={"query": "Find the match"}, summary_suffix=True)
    items = mixed_items(media_dir)
    before = model.encode(items)
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "uniembed.json").read_text())
    assert saved["embedding"]["pooling"] == "mean" and saved["embedding"]["prompts"] == {"query": "Find the match"}
    loaded = Embedder.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.encode(items), before)
    np.testing.assert_array_equal(loaded.encode_query(["x"]), model.encode(["x"], instruction="Find the match"))


def test_plain_checkpoint_loads_with_defaults_and_overrides(tiny_embedder, tmp_path):
    tiny_embedder.backbone.save(tmp_path / "plain")  # a HF checkpoint with no uniembed.json
    loaded = Embedder.from_pretrained(tmp_path / "plain", pooling="eos")
    assert loaded.config.pooling == "eos" and loaded.config.eos_token == "<|endoftext|>"
    assert loaded.config.chat_template and loaded.config.positions == "mrope"
    with pytest.raises(ConfigError, match="unknown embedding option"):
        Embedder.from_pretrained(tmp_path / "plain", pool="eos")
    with pytest.raises(FileNotFoundError, match="not found"):
        Embedder.from_pretrained(tmp_path / "nope")


def test_lora_adapter_checkpoint_loads(tiny_embedder, tmp_path):
    from peft import LoraConfig, get_peft_model

    base_dir = tmp_path / "base"
    tiny_embedder.save_pretrained(base_dir)
    base = Embedder.from_pretrained(base_dir)
    base.backbone.model = get_peft_model(base.backbone.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                         init_lora_weights=False))
    tuned = Embedder(base.backbone, base.config, source=str(base_dir))
    expected = tuned.encode(["a lora test", "another"])
    tuned.save_pretrained(tmp_path / "adapter", merge_lora=False)
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    np.testing.assert_allclose(Embedder.from_pretrained(tmp_path / "adapter").encode(["a lora test", "another"]), expected, atol=1e-5)
    tuned.save_pretrained(tmp_path / "merged")
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    np.testing.assert_allclose(Embedder.from_pretrained(tmp_path / "merged").encode(["a lora test", "another"]), expected, atol=1e-5)
    assert np.abs(expected - tiny_embedder.encode(["a lora test", "another"])).max() > 1e-4


def test_mrope_positions_match_transformers(tiny_embedder, media_dir):
    inner = tiny_embedder.backbone.model.model
    if "mm_token_type_ids" not in inspect.signature(inner.get_rope_index).parameters:
        pytest.skip("this transformers version computes M-RoPE without mm_token_type_ids")
    model = variant(tiny_embedder, padding_side="left")
    decoded = [model.decode(item, i) for i, item in enumerate(
        [Item(text="x", images=[str(media_dir / "red.png"), str(media_dir / "blue.jpg")]),
         Item(text="a video", video=str(media_dir / "clip")), Item(text="text only, longer than the others here")])]
    batch = model.collate(decoded)
    config = tiny_embedder.backbone.model.config
    types = torch.zeros_like(batch["input_ids"])
    types[batch["input_ids"] == config.image_token_id] = 1
    types[batch["input_ids"] == config.video_token_id] = 2
    expected, _ = inner.get_rope_index(batch["input_ids"], mm_token_type_ids=types, image_grid_thw=batch["image_grid_thw"],
                                       video_grid_thw=batch["video_grid_thw"], attention_mask=batch["attention_mask"])
    real = batch["attention_mask"].bool()
    for row in range(3):
        assert torch.equal(batch["position_ids"][:, row, real[row]], expected[:, row, real[row]])


def test_bidirectional_attention_stays_bidirectional_without_padding():
    mask = torch.ones(1, 4, dtype=torch.long)  # no padding at all
    causal = attention_bias(mask, "causal", torch.float32)
    both = attention_bias(mask, "bidirectional", torch.float32)
    assert (causal[0, 0] == 0).sum() == 10 and (both[0, 0] == 0).all()


def test_attention_mode_changes_what_early_tokens_see(tiny_embedder):
    """With mean pooling, a change at the END of the text moves the first token's state only if bidirectional."""
    def first_token_state(attention):
        model = variant(tiny_embedder, attention=attention, pooling="mean", chat_template=False)
        states = []
        for text in ("red circle left", "red circle right"):
            batch = model.collate([model.decode(Item(text=text))])
            with torch.no_grad():
                states.append(model.backbone.hidden_states(batch, model.config)[0, 0])
        return (states[0] - states[1]).abs().max().item()

    assert first_token_state("causal") == 0.0
    assert first_token_state("bidirectional") > 1e-4


def test_instruction_span_excluded_from_mean_pool(tiny_embedder):
    model = variant(tiny_embedder, pooling="mean_no_instruction", attention="causal", chat_template=False, images_first=True)
    batch = model.collate([model.decode(Item(text="the content", instruction="Find this"))])
    flagged = model.backbone.tokenizer.decode(batch["input_ids"][0][batch["instruction_mask"][0]])
    assert flagged == "<instruction_start>Find this<instruction_end>"


def test_encode_api_errors(tiny_embedder, media_dir):
    with pytest.raises(TypeError):
        tiny_embedder.encode(["a"], normalise=True)  # unknown keyword arguments are an error
    with pytest.raises(InputError, match=r"item 1, file '.*missing.png': file not found"):
        tiny_embedder.encode(["fine", {"image": str(media_dir / "missing.png")}])
    with pytest.raises(ConfigError, match="unknown prompt_name"):
        tiny_embedder.encode(["a"], prompt_name="nope")
    tensor = tiny_embedder.encode("one string", convert_to="tensor")
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (1, tiny_embedder.dimension)
    sims = Embedder.similarity(tiny_embedder.encode(["a", "b"]), tiny_embedder.encode(["a"]))
    assert sims.shape == (2, 1) and abs(sims[0, 0] - 1) < 1e-5


def test_instruction_changes_embedding_and_truncation(tiny_embedder):
    plain, instructed = tiny_embedder.encode(["a red circle"]), tiny_embedder.encode(["a red circle"], instruction="Find it")
    assert np.abs(plain - instructed).max() > 1e-4
    short = variant(tiny_embedder, max_length=80)
    long_text = " ".join(["red circle"] * 200)
    batch = short.collate([short.decode(Item(text=long_text))])
    assert batch["input_ids"].shape[1] <= 80
    assert short.encode([long_text]).shape == (1, short.dimension)


def test_info_and_token_counts(tiny_embedder, media_dir):
    info = tiny_embedder.info()
    assert info["model_type"] == "qwen2_vl" and info["dimension"] == 64 and info["parameters"] > 100_000
    counts = tiny_embedder.count_tokens([{"text": "hello", "image": str(media_dir / "red.png")}])
    assert counts["visual_tokens"] > 0 and counts["text_tokens"] > 0


def test_qwen2_5_vl_backbone(media_dir):
    """Qwen2.5-VL goes through the same backbone file: batch-invariant, positions equal to transformers'."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from uniembed.models.backbones.qwen2_vl import Qwen2VLBackbone
    from uniembed.models.backbones.qwen2_vl import build_image_processor
    from uniembed.models.tiny import SPECIAL_TOKENS, build_tokenizer

    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, bos_token_id=ids["<|endoftext|>"],
                         eos_token_id=ids["<|im_end|>"],
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           fullatt_block_indexes=[1], window_size=56),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    hf_model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model = Embedder(Qwen2VLBackbone(hf_model, tokenizer, build_image_processor(), "tiny-qwen2.5-vl"),
                     Embedder.default_config(Qwen2VLBackbone).replace(max_pixels=16 * 784, video_max_pixels=4 * 784,
                                                                      frames={"num_frames": 4}))
    items = mixed_items(media_dir)
    np.testing.assert_allclose(model.encode(items, batch_size=8), np.stack([model.encode([i])[0] for i in items]), atol=1e-4)
    images = [Item(text="x", images=[str(media_dir / "red.png"), str(media_dir / "blue.jpg")]), Item(text="just text")]
    batch = model.collate([model.decode(item) for item in images])
    types = torch.zeros_like(batch["input_ids"])
    types[batch["input_ids"] == config.image_token_id] = 1
    expected, _ = hf_model.model.get_rope_index(batch["input_ids"], mm_token_type_ids=types,
                                                image_grid_thw=batch["image_grid_thw"], attention_mask=batch["attention_mask"])
    real = batch["attention_mask"].bool()
    for row in range(2):
        assert torch.equal(batch["position_ids"][:, row, real[row]], expected[:, row, real[row]])
