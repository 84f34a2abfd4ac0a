"""`EmbeddingConfig`: every option of docs/methods.md §1 as a named, validated, JSON round-tripping field.

Saved as `uniembed.json` beside the checkpoint, so a saved model fully describes how to embed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, reject_unknown_fields
from ..frames import LEGACY_KEYS, FramePolicy
from ..resize import PreResize

CONFIG_NAME = "uniembed.json"

POOLINGS = ("last", "eos", "mean", "mean_no_instruction")
ATTENTIONS = ("causal", "bidirectional")
POSITIONS = ("mrope", "1d")
PADDING_SIDES = ("left", "right")
PACKINGS = ("auto", "on", "off")
INSTRUCTION_PLACEMENTS = ("prefix", "system", "none")
SUMMARY_MODALITIES = ("main", "all", "all_media_first")
MULTI_VECTOR_MASKS = ("padding", "instruction")


@dataclass
class EmbeddingConfig:
    """How a VLM turns an item into one vector.

    pooling: `last` = last real token (VLM2Vec, UniME); `eos` = append `eos_token` then take it (UNITE,
        RzenEmbed); `mean` over real tokens; `mean_no_instruction` = mean excluding the instruction span,
        marked by `instruction_start_token` / `instruction_end_token` (U-MARVEL; tokens missing from the vocabulary,
        e.g. empty ones, are not written: the span is still left out, as U-MARVEL's M-BEIR evaluation does).
    attention: `causal`, or `bidirectional` (always bidirectional, also in batches with no padding).
    positions: `mrope` (Qwen2-VL multimodal RoPE, correct) or `1d` (plain positions on all three streams,
        what UNITE/RzenEmbed/U-MARVEL ran; needed to reproduce their checkpoints).
    padding_side: `left` or `right`; pooling is batch-invariant either way.
    normalize: L2-normalise embeddings (cosine similarity).
    chat_template / system_prompt: wrap the input in the backbone's chat turns with a system turn.
    images_first: place images (and video) before the text.
    instruction_placement: `prefix` (instruction before the text in the user turn), `system` (as the system
        prompt), or `none` (ignored).
    summary_suffix: append `summary_template` with {modality} filled in (UNITE, UniME, U-MARVEL stage 1);
        `summary_modalities`: `main` names the item's main modality, `all` joins every present one in the order
        sentence, image, video with " and " (UNITE: "sentence and image"); `all_media_first` names the media
        first (U-MARVEL: "image and sentence").
    assistant_text: text after the chat template's assistant start (U-MARVEL closes the turn: "<emb>.<|im_end|>\n").
    vision_markers: wrap each image/video's tokens in the backbone's vision start/end tokens (a chat template
        does; VLM2Vec's raw MMEB text does not).
    media_separator: text between the media block and the text that follows it (VLM2Vec: "\n").
    instruction_suffix: text after the content of an item that has an instruction (VLM2Vec keeps MMEB's "\n").
    image_square: resize every image (and video frame) to this square first, before the aspect-preserving bounds
        (VLM2Vec V1's `--image_resolution high`: 1344).
    pre_resize: resize every image (and frame fed as an image) first as the authors' `fetch_image` does
        (`PreResize`: its own 28/32-px multiples and bounds, PIL bicubic), then within min/max_pixels (GME,
        RzenEmbed, UNITE, Qwen3-VL-Embedding); None = one resize.
    instruction_punctuation: strip the instruction and append this when it does not end in punctuation
        (Unicode category P*; Qwen3-VL-Embedding appends "."); None = the instruction as given.
    profile: the published model profile these settings came from (see `uniembed profiles`), if any.
    min_pixels / max_pixels: visual-token bounds for images (pixels; one visual token = 28x28 pixels).
    frames: which frames of a video are embedded (`FramePolicy`: count or rate, source-frame cap, index
        rounding, the qwen-vl-utils counting, frame-list seconds); a dict of its fields in YAML and JSON.
    video_max_pixels / video_min_pixels / video_as_images: `video_as_images` feeds sampled frames as separate images (RzenEmbed) instead of video tokens (UNITE);
        either way each frame is bounded by `video_min_pixels` (default `min_pixels`) and `video_max_pixels`.
    prompts: named instructions (e.g. {"query": "...", "document": ""}) selected by `prompt_name`.
    max_length: token limit after which text is truncated (visual tokens are never cut).
    matryoshka_dims: the prefix widths the model was trained to embed in (a stage's `loss.matryoshka.dims`,
        descending); export writes them as `matryoshka_dimensions`, and cutting to another width warns.
        Not part of the model fingerprint: it changes no vector.
    multi_vector_dim: width of the late-interaction head (`models/late_interaction.py`: a linear map of the last
        hidden states, each token L2-normalised; its weights are `late_interaction.safetensors`); None = a
        single-vector model. ColQwen2/ColPali use 128 (illuin-tech/colpali@9be8f19
        colpali_engine/models/qwen2/colqwen2/modeling_colqwen2.py:34 `self.dim = 128`).
    multi_vector_mask: which tokens `Embedder.encode_multi` drops: `padding` (only padding: every real token,
        chat-template and prompt tokens included, as ColQwen2 does: modeling_colqwen2.py:69 multiplies by the
        attention mask only, and its documents keep the "Describe the image." prompt, processing_colqwen2.py:22-24),
        or `instruction` (padding and the item's instruction tokens, the span `mean_no_instruction` leaves out).
    packing: run the language model on several items per row (attention kept inside each item, positions
        restarting per item; `models/backbones/packing.py`): `auto` packs a batch when that saves at least a
        quarter of its padded token slots and the attention implementation can (sdpa, eager, flash_attention_*
        causal), `on` packs every batch (a ConfigError names what cannot), `off` never. Not part of the
        model fingerprint: the vectors equal the padded forward's to float rounding.
    """

    pooling: str = "last"
    attention: str = "causal"
    positions: str = "mrope"
    padding_side: str = "left"
    normalize: bool = True
    chat_template: bool = True
    system_prompt: str = "You are a helpful assistant."
    images_first: bool = True
    instruction_placement: str = "prefix"
    instruction_separator: str = "\n"
    summary_suffix: bool = False
    summary_template: str = "\nSummarize above {modality} in one word:"
    summary_modalities: str = "main"
    assistant_text: str = ""
    vision_markers: bool = True
    media_separator: str = ""
    instruction_suffix: str = ""
    image_square: int | None = None
    pre_resize: PreResize | None = None
    instruction_punctuation: str | None = None
    eos_token: str | None = None
    instruction_start_token: str = "<instruction_start>"
    instruction_end_token: str = "<instruction_end>"
    min_pixels: int = 4 * 28 * 28
    max_pixels: int = 1280 * 28 * 28
    frames: FramePolicy = field(default_factory=lambda: FramePolicy(num_frames=8, max_source_frames=64))
    video_max_pixels: int = 180 * 28 * 28
    video_min_pixels: int | None = None
    video_as_images: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    max_length: int = 2048
    profile: str | None = None
    matryoshka_dims: list[int] | None = None
    multi_vector_dim: int | None = None
    multi_vector_mask: str = "padding"
    packing: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.pre_resize, dict):
            reject_unknown_fields(PreResize, self.pre_resize, "pre_resize field(s)")
            self.pre_resize = PreResize(**self.pre_resize)
        if isinstance(self.packing, bool):  # YAML reads `packing: on` / `off` as booleans
            self.packing = "on" if self.packing else "off"
        if isinstance(self.frames, dict):  # from asdict / JSON / YAML
            self.frames = FramePolicy.from_dict(self.frames)
        if not isinstance(self.frames, FramePolicy):
            raise ConfigError(f"frames must be a FramePolicy or a mapping of its fields, got {self.frames!r}")
        self.validate()

    def validate(self) -> None:
        choices = {
            "pooling": POOLINGS,
            "attention": ATTENTIONS,
            "positions": POSITIONS,
            "padding_side": PADDING_SIDES,
            "instruction_placement": INSTRUCTION_PLACEMENTS,
            "summary_modalities": SUMMARY_MODALITIES,
            "multi_vector_mask": MULTI_VECTOR_MASKS,
            "packing": PACKINGS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not one of {allowed}")
        if self.min_pixels <= 0 or self.max_pixels < self.min_pixels:
            raise ConfigError(f"need 0 < min_pixels <= max_pixels, got {self.min_pixels}, {self.max_pixels}")
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ConfigError(f"default_prompt_name {self.default_prompt_name!r} not in prompts {sorted(self.prompts)}")
        if self.image_square is not None and self.image_square < 28:
            raise ConfigError(f"image_square must be at least 28 pixels, got {self.image_square}")
        if "{modality}" not in self.summary_template:
            raise ConfigError(f"summary_template {self.summary_template!r} needs a {{modality}} field")
        if self.max_length < 16:
            raise ConfigError("max_length must be at least 16")
        dims = self.matryoshka_dims
        if dims is not None and (not dims or any(not isinstance(d, int) or d < 1 for d in dims)
                                 or list(dims) != sorted(set(dims), reverse=True)):
            raise ConfigError(f"matryoshka_dims must be distinct positive integers in descending order, got {dims!r}")
        width = self.multi_vector_dim
        if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 1):
            raise ConfigError(f"multi_vector_dim must be a positive integer (ColQwen2: 128) or null, got {width!r}")

    @property
    def marks_instruction(self) -> bool:
        return self.pooling == "mean_no_instruction"

    def replace(self, **overrides: Any) -> "EmbeddingConfig":
        """A copy with `overrides` applied; unknown names are an error, not silently dropped. `frames` given
        as a mapping changes only the policy fields it names (a `FramePolicy` replaces the whole policy)."""
        reject_unknown_fields(EmbeddingConfig, overrides, "embedding option(s)")
        data = asdict(self)
        data["frames"] = self.frames
        data.update(overrides)
        if isinstance(overrides.get("frames"), dict):
            data["frames"] = self.frames.updated(overrides["frames"])
        return EmbeddingConfig(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EmbeddingConfig":
        """From a saved `uniembed.json` or a recipe's `embedding:`; the flat frame keys that files written
        before `FramePolicy` hold (`video_frames`, `video_fps`, `video_max_source_frames`, `frame_rounding`)
        are read into `frames`."""
        data = dict(data)
        legacy = {LEGACY_KEYS[key]: data.pop(key) for key in list(data) if key in LEGACY_KEYS}
        reject_unknown_fields(cls, data, "embedding option(s)", "config")
        frames = cls().frames.updated(legacy).updated(dict(data.get("frames") or {}))
        return cls(**dict(data, frames=frames))


@dataclass
class SavedModelInfo:
    """Everything `uniembed.json` holds: the embedding config plus how to find the weights."""

    embedding: EmbeddingConfig
    backbone: str
    base_model: str | None = None  # for LoRA adapters: the base checkpoint directory
    adapter: bool = False
    uniembed_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = "embedder"  # or "reranker" (uniembed.Reranker); `embedding` then holds its prompt/pixel options

    def save(self, directory: str | Path) -> None:
        payload = {
            "kind": self.kind,
            "uniembed_version": self.uniembed_version,
            "backbone": self.backbone,
            "base_model": self.base_model,
            "adapter": self.adapter,
            "embedding": self.embedding.to_dict(),
            "extra": self.extra,
        }
        path = Path(directory) / CONFIG_NAME
        path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "SavedModelInfo | None":
        path = Path(directory) / CONFIG_NAME
        if not path.exists():
            return None
        try:
            payload = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc}); delete it to load with defaults") from exc
        return cls(
            embedding=EmbeddingConfig.from_dict(payload.get("embedding", {})),
            backbone=payload.get("backbone", ""),
            base_model=payload.get("base_model"),
            adapter=bool(payload.get("adapter", False)),
            uniembed_version=payload.get("uniembed_version", ""),
            extra=payload.get("extra", {}),
            kind=payload.get("kind", "embedder"),
        )


def model_fingerprint(config: EmbeddingConfig, weights: str) -> str:
    """The model id that keys the embedding cache: the embedding config and the weights' digest
    (`Embedder.weights_fingerprint`). Needs no torch, so a warm eval computes it from a recorded digest."""
    fields = config.to_dict()
    fields.pop("matryoshka_dims")  # which widths were trained changes no vector: same cache
    if fields["multi_vector_dim"] is None:  # a single-vector model keeps the id it had before these fields existed
        fields.pop("multi_vector_dim")
        fields.pop("multi_vector_mask")
    fields.pop("packing")  # nor does packing (beyond float rounding)
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    digest.update(weights.encode())
    return digest.hexdigest()[:20]
