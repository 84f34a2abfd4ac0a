"""What every tiny random VLM shares: the offline tokenizer, the sizes, seeded initialisation, the spec.

Each family builds its own tiny model in its backbone file (`Backbone.build_tiny`): real architectures, real
tokenizer formats and processors, no downloads.

The tokenizer is a byte-level BPE (the same kind Qwen2 uses) whose merges are derived deterministically
from a built-in word list, so every machine builds byte-identical tokenizers and any text is encodable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError

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


def _merge_by_rank(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encoding of one pre-token: merge the adjacent pair of lowest rank until none is known."""
    symbols = list(symbols)
    while len(symbols) > 1:
        known = [(ranks[pair], i) for i, pair in enumerate(zip(symbols, symbols[1:])) if pair in ranks]
        if not known:
            break
        _, i = min(known)
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols


def word_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The byte alphabet plus merges that make every listed word one token, in four forms.

    Merges apply by rank, so a word's own prefix chain is not enough: an earlier word's merge can split it first
    (" large" became " l", "ar", "g", "e"). Each form is therefore encoded with the merges made so far and its
    leftmost pair merged until it is whole: the merges BPE training would add for it.
    """
    from tokenizers import pre_tokenizers

    vocab = {symbol: index for index, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in _WORDS:
        for form in (word, " " + word, word.capitalize(), " " + word.capitalize()):
            pieces = _merge_by_rank(list(_byte_level(form)), ranks)
            while len(pieces) > 1:
                pair = (pieces[0], pieces[1])
                ranks[pair] = len(merges)
                merges.append(pair)
                vocab.setdefault(pair[0] + pair[1], len(vocab))
                pieces = _merge_by_rank(pieces, ranks)
    return vocab, merges


def build_tokenizer(extra_special_tokens: tuple[str, ...] = ()) -> Any:
    """A byte-level BPE tokenizer with Qwen2-VL's special tokens, built without any download.

    Every word of the built-in list is one token (bare, capitalised, after a space); other text falls back to
    bytes. `extra_special_tokens` (e.g. LLaVA-OneVision's `<image>` / `<video>`) are appended after the shared
    ones, so every family's tokenizer gives the same ids to the same text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab, merges = word_merges()
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


def tiny_size(size: str) -> TinySize:
    """The geometry of a tiny size name (`TINY_SIZES`), or a ConfigError listing them."""
    if size not in TINY_SIZES:
        raise ConfigError(f"unknown tiny size {size!r}; choose from {sorted(TINY_SIZES)}")
    return TINY_SIZES[size]


def seeded_model(model_class: Any, config: Any, seed: int, attn_implementation: str) -> Any:
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


# ---- the spec and the families -------------------------------------------------------------------
COMMON_DEFAULTS: dict[str, Any] = dict(frames={"num_frames": 4}, eos_token="<|endoftext|>", max_length=512)
TINY_FAMILIES = ("qwen2_vl", "qwen3_vl", "llava_onevision")  # each builds its tiny model: `Backbone.build_tiny`


def parse_tiny_spec(spec: str) -> tuple[str, str, int]:
    """(family, size, seed) of a `tiny[:family][:size[:seed]]` model spec ("tiny:qwen3_vl:small:1")."""
    parts = spec.split(":")[1:]
    family = parts.pop(0) if parts and parts[0] in TINY_FAMILIES else "qwen2_vl"
    size = parts[0] if parts and parts[0] else "tiny"
    return family, size, int(parts[1]) if len(parts) > 1 else 0


def check_tiny_family(family: str) -> str:
    """`family` when it has a tiny model, else a ConfigError naming the families that do."""
    if family not in TINY_FAMILIES:
        raise ConfigError(f"unknown tiny family {family!r}; choose from {list(TINY_FAMILIES)}")
    return family


def token_ids(tokenizer: Any, tokens: tuple[str, ...] = SPECIAL_TOKENS) -> dict[str, int]:
    """{token: id} of special tokens, for a tiny model config's token-id fields."""
    return {token: tokenizer.convert_tokens_to_ids(token) for token in tokens}
