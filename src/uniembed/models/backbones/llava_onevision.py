"""LLaVA-OneVision: a SigLIP tower, AnyRes tiling with newline tokens, a Qwen2 language model with 1-D RoPE.

Token form (transformers' LlavaOnevisionProcessor, which this mirrors): an image is `<image>` repeated once per
visual feature. A lone image is tiled (AnyRes): the base tile's features, then the unpadded tile grid with one
newline feature per row, shrunk when it exceeds `anyres_max_9` tiles' worth; an image among several in one item
is its base tile plus one newline. A video is `<video>` repeated frames x ceil(side/2)^2 (2x2 pooled) + 1.
Positions are plain 1-D (the LM has no M-RoPE), so `positions="mrope"` is refused.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from ...errors import ConfigError
from ..config import EmbeddingConfig
from ..tiny import COMMON_DEFAULTS, SPECIAL_TOKENS, build_tokenizer, seeded_model, tiny_size, token_ids
from .base import Backbone, VisualInput, register_backbone
from .packing import language_inputs
from .qwen2_vl import QWEN_CHAT


LLAVA_SPECIAL_TOKENS = ("<image>", "<video>")
LLAVA_TILE = 32  # tiny SigLIP tile (the real one is 384 px, patch 14): 4x4 patches of 8 px
LLAVA_PATCH = 8


def build_llava_tokenizer() -> Any:
    """The tiny tokenizer with LLaVA's `<image>` / `<video>` appended (shared ids for everything else)."""
    return build_tokenizer(LLAVA_SPECIAL_TOKENS)


def llava_grid_pinpoints(tile: int = LLAVA_TILE, max_tiles: int = 3) -> list[list[int]]:
    """AnyRes resolutions: every (rows x cols) of tiles up to `max_tiles` a side (the real checkpoint: 6)."""
    return [[tile * rows, tile * cols] for rows in range(1, max_tiles + 1) for cols in range(1, max_tiles + 1)]


def build_tiny_llava_onevision(tokenizer: Any, size: str = "tiny", seed: int = 0,
                               attn_implementation: str = "sdpa") -> Any:
    """A randomly initialised LLaVA-OneVision: SigLIP tower, AnyRes tiling with newline tokens, a Qwen2 LM."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    s = tiny_size(size)
    ids = token_ids(tokenizer, SPECIAL_TOKENS + LLAVA_SPECIAL_TOKENS)
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
    return seeded_model(LlavaOnevisionForConditionalGeneration, config, seed, attn_implementation)


def build_llava_image_processor() -> Any:
    """LLaVA-OneVision's image processor (PIL backend) at the tiny tile size, offline."""
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil

    return LlavaOnevisionImageProcessorPil(size={"height": LLAVA_TILE, "width": LLAVA_TILE},
                                           image_grid_pinpoints=llava_grid_pinpoints())


@register_backbone
class LlavaOnevisionBackbone(Backbone):
    """`VisualInput.grid_thw` holds (tiles, original height, original width) for images, (frames, h, w) for videos."""

    model_types = ("llava_onevision",)
    chat = QWEN_CHAT
    default_eos_token = "<|endoftext|>"
    config_defaults: ClassVar[dict[str, Any]] = {"positions": "1d"}

    @classmethod
    def build_tiny(cls, size: str = "tiny", seed: int = 0) -> tuple[Any, Any, Any, dict[str, Any]]:
        tokenizer = build_llava_tokenizer()
        return (build_tiny_llava_onevision(tokenizer, size=size, seed=seed), tokenizer, build_llava_image_processor(),
                dict(COMMON_DEFAULTS, positions="1d", max_length=1024))

    @classmethod
    def load(cls, path: str | Path, dtype: torch.dtype | None,
             attn_implementation: str | None) -> "LlavaOnevisionBackbone":
        from transformers import AutoTokenizer, LlavaOnevisionForConditionalGeneration
        from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
            LlavaOnevisionImageProcessorPil,
        )

        kwargs: dict[str, Any] = {"attn_implementation": attn_implementation or "sdpa"}
        if dtype is not None:
            kwargs["dtype"] = dtype
        model = LlavaOnevisionForConditionalGeneration.from_pretrained(path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(model, tokenizer, LlavaOnevisionImageProcessorPil.from_pretrained(path), str(path))

    def save(self, directory: str | Path, state_dict: dict[str, Any] | None = None) -> None:
        self.model.save_pretrained(directory, state_dict=state_dict)
        self.tokenizer.save_pretrained(directory)
        self.image_processor.save_pretrained(directory)

    # ---- geometry --------------------------------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        return int(self.model.config.text_config.hidden_size)

    @property
    def tile(self) -> int:
        return int(self.model.config.vision_config.image_size)

    @property
    def tile_side(self) -> int:
        """Vision patches along one side of a tile (27 for SigLIP-so400m at 384 px)."""
        return self.tile // int(self.model.config.vision_config.patch_size)

    def _tile_tokens(self) -> int:
        # transformers drops one token in total under the "default" strategy (LlavaOnevisionProcessor)
        default = self.model.config.vision_feature_select_strategy == "default"
        return self.tile_side ** 2 - (1 if default else 0)

    def anyres_tokens(self, height: int, width: int) -> int:
        """Feature count of a tiled image: base tile + unpadded grid + a newline per row (capped by anyres_max_N)."""
        from transformers.image_processing_utils import select_best_resolution

        config = self.model.config
        best_height, best_width = select_best_resolution([height, width], config.image_grid_pinpoints)
        side = self.tile_side
        rows, cols = side * (best_height // self.tile), side * (best_width // self.tile)
        if width / height > cols / rows:
            rows -= 2 * ((rows - int(round(height * (cols / width), 7))) // 2)
        else:
            cols -= 2 * ((cols - int(round(width * (rows / height), 7))) // 2)
        features, newlines = rows * cols, rows
        max_tiles = int(config.vision_aspect_ratio.strip("anyres_max_"))
        ratio = math.sqrt(rows * cols / (max_tiles * side ** 2))
        if ratio > 1.1:
            features, newlines = int(rows // ratio) * int(cols // ratio), int(rows // ratio)
        return self._tile_tokens() + features + newlines

    # ---- the token estimate: the same formulas as the token form ----------------------------------------
    def image_tokens(self, sizes: list[tuple[int, int] | None], frames: int, config: EmbeddingConfig) -> int:
        """A lone image is tiled (AnyRes, from its original size; unknown: the largest grid pinpoint); several
        images (video frames fed as images included) are one base tile and a newline each."""
        count = len(sizes) + frames
        if count > 1:
            return count * (self._tile_tokens() + 1)
        size = sizes[0] if sizes else ((config.image_square,) * 2 if config.image_square is not None else None)
        if size is None:
            return max(self.anyres_tokens(height, width) for height, width in self.model.config.image_grid_pinpoints)
        return self.anyres_tokens(size[1], size[0])

    def video_tokens(self, config: EmbeddingConfig) -> int:
        return self._video_feature_count(config.frames.budget_frames)

    def _video_feature_count(self, frames: int) -> int:
        """Features of a video of `frames` frames: each 2x2 pooled, plus one newline."""
        pooled = math.ceil(self.tile_side / 2)
        return frames * pooled * pooled + 1

    # ---- pixels ----------------------------------------------------------------------------------
    def preprocess_image(self, image: Image.Image, config: EmbeddingConfig) -> VisualInput:
        return self.preprocess_images([image], [config])[0]

    def preprocess_images(self, images: list[Image.Image], configs: list[EmbeddingConfig]) -> list[VisualInput]:
        """One image is tiled (AnyRes); several in one item are each one base tile (as the processor does). The
        checkpoint's grid pinpoints decide the tiling, so the per-image pixel bounds in `configs` do not apply."""
        if not images:
            return []
        if len(images) == 1:
            out = self.image_processor(images=[images], return_tensors="pt")
            pixels = out["pixel_values"][0]
            height, width = (int(v) for v in out["image_sizes"][0])
            return [VisualInput("image", pixels, (pixels.shape[0], height, width), self.anyres_tokens(height, width))]
        out = self.image_processor(images=[images], return_tensors="pt")
        visuals = []
        for index, image in enumerate(images):
            pixels = out["pixel_values"][index][:1]
            visuals.append(VisualInput("image", pixels, (1, image.height, image.width), self._tile_tokens() + 1))
        return visuals

    def preprocess_video(self, frames: list[Image.Image], config: EmbeddingConfig) -> VisualInput:
        """Frames resized to one tile each (bicubic), normalised; features are 2x2 pooled, plus one newline."""
        mean = np.asarray(self.image_processor.image_mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.image_processor.image_std, dtype=np.float32)[:, None, None]
        arrays = [(np.asarray(frame.convert("RGB").resize((self.tile, self.tile), resample=Image.BICUBIC),
                              dtype=np.float32).transpose(2, 0, 1) / 255.0 - mean) / std for frame in frames]
        pixels = torch.from_numpy(np.ascontiguousarray(np.stack(arrays)))
        return VisualInput("video", pixels, (len(frames), self.tile, self.tile), self._video_feature_count(len(frames)))

    def media_placeholder(self, visual: VisualInput) -> list[int]:
        config = self.model.config
        return [config.image_token_id if visual.kind == "image" else config.video_token_id] * visual.num_tokens

    # ---- positions and forward -------------------------------------------------------------------
    def position_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, visuals: list[list[VisualInput]],
                     config: EmbeddingConfig) -> torch.Tensor:
        """B x L positions counted from each row's first real token (padding never shifts them)."""
        if config.positions != "1d":
            raise ConfigError(f"positions={config.positions!r}: LLaVA-OneVision's language model uses 1-D RoPE; "
                              "set positions='1d'")
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    def _image_features(self, batch: dict[str, torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
        inner = self.hf_model.model
        config = self.hf_model.config
        grids = batch["image_grid_thw"]
        # transformers tiles image k unless its sample holds several images: a lone base tile belongs to a run
        runs: list[int] = []
        for tiles in grids[:, 0].tolist():
            if tiles == 1 and runs and runs[-1] < 0:
                runs[-1] -= 1
            else:
                runs.append(1 if tiles > 1 else -1)
        output = inner.get_image_features(
            batch["image_pixel_values"].to(dtype), image_sizes=grids[:, 1:],
            batch_num_images=torch.tensor([abs(n) for n in runs]),
            vision_feature_layer=config.vision_feature_layer,
            vision_feature_select_strategy=config.vision_feature_select_strategy,
            vision_aspect_ratio=config.vision_aspect_ratio, return_dict=True)
        return torch.cat(list(output.pooler_output), dim=0)

    def _video_features(self, batch: dict[str, torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
        inner = self.hf_model.model
        config = self.hf_model.config
        frames = batch["video_grid_thw"][:, 0].tolist()
        features = []
        for pixels in torch.split(batch["video_pixel_values"].to(dtype), frames):
            # positional: transformers 5.17 names it `pixel_values`, 5.23 `pixel_values_videos`
            output = inner.get_video_features(
                pixels[None], vision_feature_layer=config.vision_feature_layer,
                vision_feature_select_strategy=config.vision_feature_select_strategy, return_dict=True)
            video = output.pooler_output.flatten(0, 1)
            if video.shape[0] == len(pixels) * math.ceil(self.tile_side / 2) ** 2:
                # transformers 5.17 appends the video's newline feature in forward, 5.23 in get_video_features
                video = torch.cat([video, inner.image_newline[None].to(video)])
            features.append(video)
        return torch.cat(features, dim=0)

    def hidden_states(self, batch: dict[str, torch.Tensor], config: EmbeddingConfig) -> torch.Tensor:
        """Visual features scattered into the token embeddings, then the LM on uniembed's positions and mask."""
        inner = self.hf_model.model
        hf_config = self.hf_model.config
        dtype = self.hf_model.dtype
        input_ids = batch["input_ids"]
        embeds = inner.get_input_embeddings()(input_ids)
        for kind, token_id, features in (("image", hf_config.image_token_id, self._image_features),
                                         ("video", hf_config.video_token_id, self._video_features)):
            if f"{kind}_pixel_values" in batch:
                where = (input_ids == token_id).unsqueeze(-1)
                embeds = embeds.masked_scatter(where, features(batch, dtype).to(embeds.dtype))
        language = language_inputs(embeds, batch, config, hf_config, dtype)
        outputs = inner.language_model(inputs_embeds=language.tokens, attention_mask=language.mask,
                                       position_ids=language.position_ids, use_cache=False)
        return language.hidden(outputs.last_hidden_state)
