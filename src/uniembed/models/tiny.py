"""Tiny random Qwen2-VL models built offline: real architecture, real tokenizer format, no downloads.

The tokenizer is a byte-level BPE (the same kind Qwen2 uses) whose merges are derived deterministically
from a built-in word list, so every machine builds byte-identical tokenizers and any text is encodable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>", "<instruction_start>", "<instruction_end>",
)

_WORDS = """
a an the of in on at to for with from by and or not is are was be it this that these those there here
what which who where when how many much one two three four five six seven eight nine ten zero
red green blue yellow orange purple pink brown black white gray grey cyan magenta colour color
circle square triangle star cross diamond hexagon ring rectangle ellipse shape shapes object objects
small large big tiny medium size left right above below top bottom middle center centre corner next
between near far behind front inside outside over under moving moves move up down still rotating
rotates static fast slow clockwise counterclockwise video frame frames scene image picture photo
page document text title paragraph section report table chart figure line word words number count
represent given find retrieve select choose answer question query candidate caption description
classification retrieval matches match matching following relevant instruction summarize above
sentence one edit change make replace remove add modified version same different only also all
first second third last before after during then than more less most least has have contains show
shows showing appears located positioned placed sits lies sitting lying yes no true false
""".split()


def _byte_level(text: str) -> str:
    from tokenizers import pre_tokenizers

    return "".join(token for token, _ in pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text))


def build_tokenizer() -> Any:
    """A byte-level BPE tokenizer with Qwen2-VL's special tokens, built without any download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    merges: list[tuple[str, str]] = []
    for symbol in alphabet:
        vocab[symbol] = len(vocab)
    for word in _WORDS:
        for form in (word, " " + word, word.capitalize(), " " + word.capitalize()):
            symbols = _byte_level(form)
            for end in range(2, len(symbols) + 1):
                left, right = symbols[: end - 1], symbols[end - 1]
                merged = left + right
                if merged not in vocab:
                    vocab[merged] = len(vocab)
                    merges.append((left, right))
    model = models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False)
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        padding_side="left",
    )


@dataclass(frozen=True)
class TinySize:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vision_depth: int
    vision_dim: int
    vision_heads: int


TINY_SIZES = {
    # ~0.5M parameters: unit tests
    "tiny": TinySize(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vision_depth=1, vision_dim=32, vision_heads=2),
    # ~1.1M parameters: the demo on 2 CPU cores
    "mini": TinySize(hidden=96, layers=3, heads=4, kv_heads=2, intermediate=256, vision_depth=1, vision_dim=64, vision_heads=4),
    # ~2.3M parameters: longer CPU runs
    "small": TinySize(hidden=160, layers=4, heads=4, kv_heads=2, intermediate=384, vision_depth=2, vision_dim=64, vision_heads=4),
}


def build_tiny_model(tokenizer: Any, size: str = "tiny", seed: int = 0, attn_implementation: str = "sdpa") -> Any:
    """A randomly initialised Qwen2-VL with the geometry of `TINY_SIZES[size]` (patch 14, merge 2)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    if size not in TINY_SIZES:
        raise ValueError(f"unknown tiny size {size!r}; choose from {sorted(TINY_SIZES)}")
    s = TINY_SIZES[size]
    head_dim = s.hidden // s.heads
    spatial = (head_dim // 2 * 3) // 8  # Qwen2-VL's 16/24/24 split of 64 rotary pairs, scaled
    mrope = [head_dim // 2 - 2 * spatial, spatial, spatial]
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=s.hidden,
            intermediate_size=s.intermediate,
            num_hidden_layers=s.layers,
            num_attention_heads=s.heads,
            num_key_value_heads=s.kv_heads,
            max_position_embeddings=8192,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(depth=s.vision_depth, embed_dim=s.vision_dim, hidden_size=s.hidden,
                           num_heads=s.vision_heads, mlp_ratio=2),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    config._attn_implementation = attn_implementation
    previous = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Qwen2VLForConditionalGeneration(config)
        _widen_vision_init(model, seed)
    finally:
        torch.random.set_rng_state(previous)
    return model.eval()


VISION_INIT_STD = 0.1


def _widen_vision_init(model: Any, seed: int) -> None:
    """Re-draw the vision tower's matrices with std 0.1 (transformers uses 0.02).

    At 0.02 a random tiny ViT maps every synthetic scene to nearly the same vector (cosine ~0.96), and
    contrastive training from scratch collapses to the constant solution before images separate; at 0.1
    scenes start distinguishable and image tasks learn within the demo's budget.
    """
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(("model.visual", "visual")) and parameter.ndim >= 2:
                parameter.normal_(0.0, VISION_INIT_STD, generator=generator)


def build_image_processor(min_pixels: int = 4 * 28 * 28, max_pixels: int = 64 * 28 * 28) -> Any:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)
