"""Tiny random VLMs built offline (Qwen2-VL, Qwen3-VL, LLaVA-OneVision): real architectures, real tokenizer
formats and processors, no downloads.

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


def build_tokenizer(extra_special_tokens: tuple[str, ...] = ()) -> Any:
    """A byte-level BPE tokenizer with Qwen2-VL's special tokens, built without any download.

    `extra_special_tokens` (e.g. LLaVA-OneVision's `<image>` / `<video>`) are appended after the shared ones,
    so every family's tokenizer gives the same ids to the same text."""
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
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS) + list(extra_special_tokens))
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


def _size(size: str) -> TinySize:
    if size not in TINY_SIZES:
        raise ValueError(f"unknown tiny size {size!r}; choose from {sorted(TINY_SIZES)}")
    return TINY_SIZES[size]


def build_tiny_model(tokenizer: Any, size: str = "tiny", seed: int = 0, attn_implementation: str = "sdpa") -> Any:
    """A randomly initialised Qwen2-VL with the geometry of `TINY_SIZES[size]` (patch 14, merge 2)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    s = _size(size)
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
    return _seeded_model(Qwen2VLForConditionalGeneration, config, seed, attn_implementation)


def _seeded_model(model_class: Any, config: Any, seed: int, attn_implementation: str) -> Any:
    """`model_class(config)` drawn from `seed` without disturbing the caller's RNG, vision init widened."""
    config._attn_implementation = attn_implementation
    previous = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = model_class(config)
        _widen_vision_init(model, seed)
    finally:
        torch.random.set_rng_state(previous)
    return model.eval()


VISION_INIT_STD = 0.1
VISION_PREFIXES = ("model.visual", "visual", "model.vision_tower", "model.multi_modal_projector")


def _widen_vision_init(model: Any, seed: int) -> None:
    """Re-draw the vision tower's matrices with std 0.1 (transformers uses 0.02).

    At 0.02 a random tiny ViT maps every synthetic scene to nearly the same vector (cosine ~0.96), and
    contrastive training from scratch collapses to the constant solution before images separate; at 0.1
    scenes start distinguishable and image tasks learn within the demo's budget.
    """
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(VISION_PREFIXES) and parameter.ndim >= 2:
                parameter.normal_(0.0, VISION_INIT_STD, generator=generator)


def build_image_processor(min_pixels: int = 4 * 28 * 28, max_pixels: int = 64 * 28 * 28) -> Any:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)


# ---- Qwen3-VL ------------------------------------------------------------------------------------
QWEN3_VL_PATCH = 16  # Qwen3-VL: 16-px patches merged 2x2, i.e. 32x32 px per visual token
QWEN3_VL_FACTOR = 2 * QWEN3_VL_PATCH


def build_tiny_qwen3_vl(tokenizer: Any, size: str = "tiny", seed: int = 0, attn_implementation: str = "sdpa") -> Any:
    """A randomly initialised Qwen3-VL: DeepStack features from vision block 0 injected after LM layer 0,
    interleaved M-RoPE, 16-px patches merged 2x2, temporal patches of 2 frames."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    s = _size(size)
    head_dim = s.hidden // s.heads
    spatial = head_dim // 8  # Qwen3-VL's 24/20/20 of 64 rotary pairs, scaled (height/width interleave with time)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config = Qwen3VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=s.hidden, intermediate_size=s.intermediate,
            num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
            head_dim=head_dim, max_position_embeddings=8192,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_interleaved": True,
                             "mrope_section": [head_dim // 2 - 2 * spatial, spatial, spatial]},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(depth=s.vision_depth, hidden_size=s.vision_dim, intermediate_size=2 * s.vision_dim,
                           num_heads=s.vision_heads, out_hidden_size=s.hidden, patch_size=QWEN3_VL_PATCH,
                           spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64,
                           deepstack_visual_indexes=[0]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    return _seeded_model(Qwen3VLForConditionalGeneration, config, seed, attn_implementation)


def build_qwen3_vl_image_processor(min_pixels: int = 4 * QWEN3_VL_FACTOR ** 2,
                                   max_pixels: int = 64 * QWEN3_VL_FACTOR ** 2) -> Any:
    """Qwen3-VL's image processor settings (patch 16, merge 2, mean/std 0.5), offline."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels, patch_size=QWEN3_VL_PATCH,
                                    merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3)


# ---- LLaVA-OneVision -----------------------------------------------------------------------------
LLAVA_SPECIAL_TOKENS = ("<image>", "<video>")
LLAVA_TILE = 32  # tiny SigLIP tile (the real one is 384 px, patch 14): 4x4 patches of 8 px
LLAVA_PATCH = 8


def build_llava_tokenizer() -> Any:
    return build_tokenizer(LLAVA_SPECIAL_TOKENS)


def llava_grid_pinpoints(tile: int = LLAVA_TILE, max_tiles: int = 3) -> list[list[int]]:
    """AnyRes resolutions: every (rows x cols) of tiles up to `max_tiles` a side (the real checkpoint: 6)."""
    return [[tile * rows, tile * cols] for rows in range(1, max_tiles + 1) for cols in range(1, max_tiles + 1)]


def build_tiny_llava_onevision(tokenizer: Any, size: str = "tiny", seed: int = 0,
                               attn_implementation: str = "sdpa") -> Any:
    """A randomly initialised LLaVA-OneVision: SigLIP tower, AnyRes tiling with newline tokens, a Qwen2 LM."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    s = _size(size)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS + LLAVA_SPECIAL_TOKENS}
    config = LlavaOnevisionConfig(
        text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=s.hidden,
                         intermediate_size=s.intermediate, num_hidden_layers=s.layers, num_attention_heads=s.heads,
                         num_key_value_heads=s.kv_heads, max_position_embeddings=8192,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(model_type="siglip_vision_model", hidden_size=s.vision_dim,
                           intermediate_size=2 * s.vision_dim, num_hidden_layers=max(2, s.vision_depth),
                           num_attention_heads=s.vision_heads, image_size=LLAVA_TILE, patch_size=LLAVA_PATCH),
        image_token_id=ids["<image>"], video_token_id=ids["<video>"],
        vision_feature_layer=-1, vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=llava_grid_pinpoints(),
    )
    return _seeded_model(LlavaOnevisionForConditionalGeneration, config, seed, attn_implementation)


def build_llava_image_processor() -> Any:
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil

    return LlavaOnevisionImageProcessorPil(size={"height": LLAVA_TILE, "width": LLAVA_TILE},
                                           image_grid_pinpoints=llava_grid_pinpoints())


# ---- one entry point per family --------------------------------------------------------------------
_COMMON_DEFAULTS = dict(frames={"num_frames": 4}, eos_token="<|endoftext|>", max_length=512)
TINY_FAMILIES = ("qwen2_vl", "qwen3_vl", "llava_onevision")


def parse_tiny_spec(spec: str) -> tuple[str, str, int]:
    """(family, size, seed) of a `tiny[:family][:size[:seed]]` model spec ("tiny:qwen3_vl:small:1")."""
    parts = spec.split(":")[1:]
    family = parts.pop(0) if parts and parts[0] in TINY_FAMILIES else "qwen2_vl"
    size = parts[0] if parts and parts[0] else "tiny"
    return family, size, int(parts[1]) if len(parts) > 1 else 0


def build_tiny_parts(family: str, size: str = "tiny", seed: int = 0) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(model, tokenizer, image processor, embedding-option defaults) of a tiny `family` model, offline."""
    if family == "qwen2_vl":
        tokenizer = build_tokenizer()
        return (build_tiny_model(tokenizer, size=size, seed=seed), tokenizer, build_image_processor(),
                dict(_COMMON_DEFAULTS, min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28, video_max_pixels=4 * 28 * 28))
    if family == "qwen3_vl":
        tokenizer = build_tokenizer()
        token = QWEN3_VL_FACTOR ** 2
        return (build_tiny_qwen3_vl(tokenizer, size=size, seed=seed), tokenizer, build_qwen3_vl_image_processor(),
                dict(_COMMON_DEFAULTS, min_pixels=4 * token, max_pixels=16 * token, video_max_pixels=4 * token))
    if family == "llava_onevision":
        tokenizer = build_llava_tokenizer()
        return (build_tiny_llava_onevision(tokenizer, size=size, seed=seed), tokenizer, build_llava_image_processor(),
                dict(_COMMON_DEFAULTS, positions="1d", max_length=1024))
    raise ValueError(f"unknown tiny family {family!r}; choose from {list(TINY_FAMILIES)}")
