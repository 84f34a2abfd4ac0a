"""What a backbone must provide, the registry, and the backbone-independent batching logic.

Adding a VLM family (LLaVA-OneVision, Phi-3.5-V, ...) is one new file in this folder that subclasses
`Backbone`, fills in the few hooks marked below, and decorates itself with `@register_backbone`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image

from ...errors import ConfigError
from ...inputs import Item
from ...media import header_size
from ..config import EmbeddingConfig
from ...resize import pre_resized
from ..templates import ChatFormat, Segment, build_segments
from .patch_projection import project_patches_linearly
from .patches import Patches, stack_pixels

TEXT_RUN_CACHE_SIZE = 200_000  # memoised tokenisations per backbone (then the memo starts over)

_REGISTRY: dict[str, type["Backbone"]] = {}


def register_backbone(cls: type["Backbone"]) -> type["Backbone"]:
    for model_type in cls.model_types:
        _REGISTRY[model_type] = cls
    return cls


def backbone_for(model_type: str) -> type["Backbone"]:
    from . import available  # noqa: F401  (imports every backbone module so they register)

    if model_type not in _REGISTRY:
        raise ConfigError(f"no uniembed backbone for model_type '{model_type}'; supported: {sorted(_REGISTRY)}")
    return _REGISTRY[model_type]


def registered_model_types() -> list[str]:
    from . import available  # noqa: F401

    return sorted(_REGISTRY)


@dataclass
class DecodedItem:
    """An item with its media decoded (images, and video frames after the frame policy).

    `segments`, when set, is a caller-built prompt layout used instead of the template's (the re-ranker
    puts a query and a candidate in one prompt); its media indices point into `images` / `videos`.
    `tokens` is `Backbone.tokenize_item`'s result computed ahead (`Backbone.prepare`), for `prepared_for`.
    """

    item: Item
    images: list[Image.Image] = field(default_factory=list)
    videos: list[list[Image.Image]] = field(default_factory=list)
    segments: list[Segment] | None = None
    tokens: tuple[list[int], list[bool], list["VisualInput"]] | None = None
    prepared_for: EmbeddingConfig | None = None
    frame_images: int = 0  # how many of `images` (the last ones) are video frames (`video_as_images`)


@dataclass
class VisualInput:
    """Preprocessed pixels of one image or video and the number of tokens it occupies."""

    kind: str  # "image" | "video"
    pixels: torch.Tensor | Patches  # (patches, patch_dim); Qwen-VL's uint8 `Patches` are normalised by `collate`
    grid_thw: tuple[int, int, int]
    num_tokens: int
    timestamps: tuple[float, ...] = ()  # seconds per temporal patch, for backbones that write them (Qwen3-VL)

    @property
    def pixel_values(self) -> torch.Tensor:
        """The float32 (patches, patch_dim) pixels."""
        return self.pixels.tensor() if isinstance(self.pixels, Patches) else self.pixels


class Backbone:
    """A VLM family. Subclasses set the class attributes and implement the hooks."""

    model_types: ClassVar[tuple[str, ...]] = ()
    chat: ClassVar[ChatFormat]
    default_eos_token: ClassVar[str] = ""
    config_defaults: ClassVar[dict[str, Any]] = {}  # embedding options a plain checkpoint of this family loads with

    def __init__(self, model: Any, tokenizer: Any, image_processor: Any, name_or_path: str) -> None:
        self.model = model
        project_patches_linearly(model)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.name_or_path = name_or_path

    # ---- hooks each backbone implements -------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, dtype: torch.dtype | None, attn_implementation: str | None) -> "Backbone":
        raise NotImplementedError

    @classmethod
    def build_tiny(cls, size: str = "tiny", seed: int = 0) -> tuple[Any, Any, Any, dict[str, Any]]:
        """(model, tokenizer, image processor, embedding-option defaults) of a tiny random model of this family,
        built offline (`models/tiny.py` holds what the families share); optional hook."""
        raise NotImplementedError(f"{cls.__name__} builds no tiny model")

    def save(self, directory: str | Path, state_dict: dict[str, Any] | None = None) -> None:
        """Weights (`state_dict` instead of the model's own, e.g. gathered from shards), tokenizer, processor."""
        raise NotImplementedError

    def preprocess_image(self, image: Image.Image, config: EmbeddingConfig) -> VisualInput:
        raise NotImplementedError

    def preprocess_video(self, frames: list[Image.Image], config: EmbeddingConfig) -> VisualInput:
        raise NotImplementedError

    def preprocess_images(self, images: list[Image.Image], configs: list[EmbeddingConfig]) -> list[VisualInput]:
        """An item's images, each under its own config (a video frame fed as an image takes the per-frame bounds);
        a family whose token form depends on the image count (LLaVA-OneVision) overrides it."""
        return [self.preprocess_image(image, image_config) for image, image_config in zip(images, configs)]

    def media_placeholder(self, visual: VisualInput) -> list[int]:
        """Token ids that stand for one image/video in the sequence."""
        raise NotImplementedError

    def vision_marker_ids(self) -> tuple[int, int] | None:
        """(start, end) ids that `media_placeholder` wraps around the visual tokens, if it does; optional hook,
        used to drop them under `vision_markers: false` (VLM2Vec's raw layout)."""
        return None

    def position_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, visuals: list[list[VisualInput]],
                     config: EmbeddingConfig) -> torch.Tensor:
        raise NotImplementedError

    def hidden_states(self, batch: dict[str, torch.Tensor], config: EmbeddingConfig) -> torch.Tensor:
        raise NotImplementedError

    def image_tokens(self, sizes: list[tuple[int, int] | None], frames: int, config: EmbeddingConfig) -> int:
        """Sequence tokens of an item's images of these (width, height) sizes (None: unknown, counted at the pixel
        budget's maximum) plus `frames` video frames fed as images, from the family's own geometry."""
        raise NotImplementedError

    def video_tokens(self, config: EmbeddingConfig) -> int:
        """Sequence tokens of one video under the frame policy (`frames.budget_frames` frames at the per-frame budget)."""
        raise NotImplementedError

    @property
    def embedding_dim(self) -> int:
        raise NotImplementedError

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("text", "image", "video")

    # ---- the token estimate ---------------------------------------------------------------------
    def estimate_tokens(self, item: Item, config: EmbeddingConfig) -> int:
        """The item's sequence length without decoding pixels, to sort and budget batches (eval, encode, serving).

        Images count at their real resized size (read from the file header; `image_tokens`), videos at the frame
        policy's budget (`video_tokens`), text at one token per three characters; the chat template's fixed
        tokens are left out (the same for every item of a config)."""
        text = len(item.text or "") + len(item.instruction or "")
        sizes = [header_size(source) for source in item.image_sources]
        if config.image_square is not None:
            sizes = [(config.image_square, config.image_square)] * len(sizes)
        frames = config.frames.budget_frames if item.video is not None and config.video_as_images else 0
        tokens = text // 3 + (self.image_tokens(sizes, frames, config) if sizes or frames else 0)
        if item.video is not None and not config.video_as_images:
            tokens += self.video_tokens(config)
        return tokens

    # ---- shared batching logic -----------------------------------------------------------------
    def prepare(self, decoded: DecodedItem, config: EmbeddingConfig) -> DecodedItem:
        """Tokenise an item (and preprocess its pixels) ahead of `collate`, e.g. in a loader thread."""
        decoded.tokens, decoded.prepared_for = self.tokenize_item(decoded, config), config
        return decoded

    def item_tokens(self, decoded: DecodedItem, config: EmbeddingConfig) -> tuple[list[int], list[bool], list[VisualInput]]:
        """`tokenize_item`'s result, computed once per item and config (kept on the item, as `prepare` does)."""
        if decoded.tokens is None or decoded.prepared_for is not config:
            self.prepare(decoded, config)
        return decoded.tokens

    def tokenize_item(self, decoded: DecodedItem, config: EmbeddingConfig) -> tuple[list[int], list[bool], list[VisualInput]]:
        """Token ids of one item, a per-token instruction flag, and its visual inputs in sequence order."""
        first_frame = len(decoded.images) - decoded.frame_images
        frame_config = frame_bounds(config) if decoded.frame_images else config
        visuals_by_kind: dict[str, list[VisualInput]] = {
            "image": self.preprocess_images([pre_resized(fixed_square(image, config), config.pre_resize)
                                             for image in decoded.images],
                                            [config if i < first_frame else frame_config
                                             for i in range(len(decoded.images))]),
            "video": [self.preprocess_video([fixed_square(frame, config) for frame in frames], config)
                      for frames in decoded.videos],
        }
        segments = decoded.segments
        if segments is None:
            segments = build_segments(decoded.item, config, self.chat, (len(decoded.images), len(decoded.videos)))
        ids, is_instruction, visuals = self._ids_from_segments(segments, visuals_by_kind, config)
        if len(ids) > config.max_length and decoded.segments is not None:
            raise ConfigError(f"a prompt of {len(ids)} tokens exceeds max_length={config.max_length}; raise max_length, "
                              "shorten the texts, or lower max_pixels / frames.num_frames")
        if len(ids) > config.max_length:
            ids, is_instruction, visuals = self._truncate(decoded, config, len(ids) - config.max_length, visuals_by_kind)
        return ids, is_instruction, visuals

    def _ids_from_segments(self, segments: list[Segment], visuals_by_kind: dict[str, list[VisualInput]],
                           config: EmbeddingConfig) -> tuple[list[int], list[bool], list[VisualInput]]:
        ids: list[int] = []
        flags: list[bool] = []
        visuals: list[VisualInput] = []
        text_run: list[tuple[str, bool]] = []

        def flush() -> None:
            if text_run:
                new_ids, new_flags = self._encode_text_run(text_run, config)
                ids.extend(new_ids)
                flags.extend(new_flags)
                text_run.clear()

        for segment in segments:
            if segment.kind in ("image", "video"):
                flush()
                visual = visuals_by_kind[segment.kind][segment.index]
                placeholder = self._placeholder(visual, config)
                ids.extend(placeholder)
                flags.extend([False] * len(placeholder))
                visuals.append(visual)
            else:
                text_run.append((segment.text, segment.kind == "instruction"))
        flush()
        return ids, flags, visuals

    def _placeholder(self, visual: VisualInput, config: EmbeddingConfig) -> list[int]:
        placeholder = self.media_placeholder(visual)
        markers = None if config.vision_markers else self.vision_marker_ids()
        if markers and len(placeholder) >= 2 and (placeholder[0], placeholder[-1]) == markers:
            return placeholder[1:-1]
        return placeholder

    def _encode_text_run(self, pieces: list[tuple[str, bool]], config: EmbeddingConfig) -> tuple[list[int], list[bool]]:
        """Tokenise consecutive text pieces as ONE string (as a processor would), flagging instruction tokens.

        Memoised: training revisits the same instructions, labels and targets every epoch."""
        cache = self.__dict__.setdefault("_text_runs", {})
        key = (tuple(pieces), config.marks_instruction, config.instruction_start_token, config.instruction_end_token)
        hit = cache.get(key)
        if hit is None:
            if len(cache) >= TEXT_RUN_CACHE_SIZE:
                cache.clear()
            hit = cache[key] = self._tokenize_text_run(pieces, config)
        return list(hit[0]), list(hit[1])

    def _tokenize_text_run(self, pieces: list[tuple[str, bool]], config: EmbeddingConfig) -> tuple[tuple, tuple]:
        text = ""
        spans = []
        for piece, is_instruction in pieces:
            if is_instruction and config.marks_instruction:
                piece = self._marked_instruction(piece, config)
            if is_instruction:
                spans.append((len(text), len(text) + len(piece)))
            text += piece
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        flags = [any(start < end_span and end > start_span for start_span, end_span in spans)
                 for start, end in encoded["offset_mapping"]]
        return tuple(encoded["input_ids"]), tuple(flags)

    def _marked_instruction(self, instruction: str, config: EmbeddingConfig) -> str:
        if self._has_tokens(config.instruction_start_token, config.instruction_end_token):
            return f"{config.instruction_start_token}{instruction}{config.instruction_end_token}"
        return instruction

    def _has_tokens(self, *tokens: str) -> bool:
        """Whether the vocabulary holds every token (cached: `get_vocab` builds a fresh dict on every call)."""
        known = self.__dict__.setdefault("_token_presence", {})
        if tokens not in known:
            vocab = self.tokenizer.get_vocab()
            known[tokens] = all(token in vocab for token in tokens)
        return known[tokens]

    def _truncate(self, decoded: DecodedItem, config: EmbeddingConfig, excess: int,
                  visuals_by_kind: dict[str, list[VisualInput]]) -> tuple[list[int], list[bool], list[VisualInput]]:
        """Shorten the item's text (never its visual tokens) until the sequence fits `max_length`."""
        text_ids = self.tokenizer(decoded.item.text or "", add_special_tokens=False)["input_ids"]
        item = decoded.item
        keep = len(text_ids) - excess
        while keep >= 1:
            shorter = Item(self.tokenizer.decode(text_ids[:keep]), item.image, item.images, item.video, item.instruction)
            segments = build_segments(shorter, config, self.chat, (len(decoded.images), len(decoded.videos)))
            ids, flags, visuals = self._ids_from_segments(segments, visuals_by_kind, config)
            if len(ids) <= config.max_length:
                return ids, flags, visuals
            keep -= len(ids) - config.max_length  # re-tokenising at the cut can shift a token or two
        raise ConfigError(f"an item does not fit max_length={config.max_length} even without its text; "
                          "raise max_length or lower max_pixels / frames.num_frames")

    def collate(self, decoded_items: list[DecodedItem], config: EmbeddingConfig) -> dict[str, Any]:
        """Tokenise, pad and stack a batch; returns model inputs plus masks used by pooling."""
        rows = [self.item_tokens(decoded, config) for decoded in decoded_items]
        length = max(len(ids) for ids, _, _ in rows)
        pad_id = self.pad_token_id
        input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        instruction_mask = torch.zeros((len(rows), length), dtype=torch.bool)
        for row, (ids, flags, _) in enumerate(rows):
            span = slice(length - len(ids), length) if config.padding_side == "left" else slice(0, len(ids))
            input_ids[row, span] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, span] = 1
            instruction_mask[row, span] = torch.tensor(flags, dtype=torch.bool)
        visuals = [row[2] for row in rows]
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "instruction_mask": instruction_mask,
            "position_ids": self.position_ids(input_ids, attention_mask, visuals, config),
        }
        for kind in ("image", "video"):
            flat = [v for row in visuals for v in row if v.kind == kind]
            if flat:
                batch[f"{kind}_pixel_values"] = stack_pixels([v.pixels for v in flat])
                batch[f"{kind}_grid_thw"] = torch.tensor([v.grid_thw for v in flat], dtype=torch.long)
        batch["visual_tokens_per_item"] = [sum(v.num_tokens for v in row) for row in visuals]
        batch["num_visual_tokens"] = sum(batch["visual_tokens_per_item"])
        return batch

    @property
    def hf_model(self) -> Any:
        """The underlying transformers model, through PEFT wrappers (LoRA layers stay injected)."""
        model = self.model
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        return int(pad if pad is not None else 0)


def frame_bounds(config: EmbeddingConfig) -> EmbeddingConfig:
    """The config whose image bounds are the per-frame video bounds (frames fed as images, RzenEmbed)."""
    low = config.video_min_pixels or config.min_pixels
    return config.replace(min_pixels=low, max_pixels=max(low, config.video_max_pixels))


def fixed_square(image: Image.Image, config: EmbeddingConfig) -> Image.Image:
    """The image resized to `image_square` x `image_square` (PIL's default bicubic filter, as VLM2Vec V1's
    `image.resize((1344, 1344))`) when the config asks for a fixed square first; else unchanged."""
    # TIGER-AI-Lab/VLM2Vec@ba1e02b (v1.0) src/dataset.py:16-20; @6e1e1d4 src/data/collator/eval_collator.py:162-163
    side = config.image_square
    if side is None or image.size == (side, side):
        return image
    return image.resize((side, side))


def attention_bias(attention_mask: torch.Tensor, attention: str, dtype: torch.dtype) -> torch.Tensor:
    """Additive B x 1 x L x L mask: padding keys blocked; future keys blocked too when causal.

    `attention_mask` holds 0 at padding and, per real token, its item's id: a plain 0/1 mask is one item per
    row; a packed row (`packing.py`) gives each item its own id, and attention stays inside each item.
    Built explicitly (never left to the attention kernel's `is_causal` shortcut) so `bidirectional`
    stays bidirectional in batches without padding, and padded queries never produce NaN.
    """
    items = attention_mask.long()
    real = items != 0
    length = attention_mask.shape[1]
    same_item = items[:, None, :, None] == items[:, None, None, :]
    allowed = real[:, None, None, :] & (same_item | ~real[:, None, :, None])
    if attention == "causal":
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=attention_mask.device).tril()
    # a fully padded query row may attend to itself, keeping softmax finite
    eye = torch.eye(length, dtype=torch.bool, device=attention_mask.device)[None, None]
    allowed = allowed | (eye & ~real[:, None, :, None])
    bias = torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)


def attention_implementation(hf_config: Any) -> str:
    """The transformers attention implementation a model runs (`sdpa` when unset)."""
    return getattr(hf_config, "_attn_implementation", "sdpa") or "sdpa"


def forward_mask(attention_mask: torch.Tensor, attention: str, hf_config: Any, dtype: torch.dtype) -> torch.Tensor:
    """The mask a transformers language model is called with: the 2-D padding mask where transformers' own causal
    mask gives the same result, else `attention_bias` (a 4-D mask transformers passes through unchanged).

    2-D: flash attention; causal sdpa when no gradient is recorded (encode, eval, serve: no L x L float mask per
    batch, 3-7% of model time in issue 26) or on CUDA (an unpadded batch then takes sdpa's `is_causal` kernels).
    CPU training keeps the 4-D bias it had: with the 2-D mask it measured 0.79-0.95x on this shared machine, a gap
    inside its noise (benchmarks/results/packing_cpu*.md), so the change waits for a quiet measurement."""
    implementation = attention_implementation(hf_config)
    if implementation.startswith("flash"):
        if attention == "bidirectional":
            raise ConfigError("bidirectional attention needs attn_implementation='sdpa' or 'eager', not flash")
        return attention_mask
    cheap = attention_mask.is_cuda or not torch.is_grad_enabled()
    if attention == "causal" and implementation == "sdpa" and cheap:
        return attention_mask
    return attention_bias(attention_mask, attention, dtype)
