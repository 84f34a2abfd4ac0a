"""Qwen2-VL and Qwen2.5-VL: visual tokens, M-RoPE / 1-D positions, and the forward pass.

Images and video frames are resized with PIL, normalised and cut into temporal patches (`patches.py`): the
pixels of the checkpoint's PIL image processor, in the flat patch layout the model's vision tower expects
(no torchvision needed). Position ids and the attention mask are computed here rather than inside
transformers, which keeps pooling batch-invariant and bidirectional attention truly bidirectional.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ...errors import InputError
from ...resize import smart_resize
from ..config import EmbeddingConfig
from ..templates import ChatFormat
from ..tiny import COMMON_DEFAULTS, build_tokenizer, seeded_model, tiny_size, token_ids
from .base import Backbone, VisualInput, frame_bounds, register_backbone
from .packing import language_inputs
from .patches import ordered_patches, resized_frames

QWEN_CHAT = ChatFormat(
    system_start="<|im_start|>system\n",
    user_start="<|im_start|>user\n",
    turn_end="<|im_end|>\n",
    assistant_start="<|im_start|>assistant\n",
)


def build_tiny_model(tokenizer: Any, size: str = "tiny", seed: int = 0, attn_implementation: str = "sdpa") -> Any:
    """A randomly initialised Qwen2-VL with the geometry of `TINY_SIZES[size]` (patch 14, merge 2)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    s = tiny_size(size)
    head_dim = s.hidden // s.heads
    spatial = (head_dim // 2 * 3) // 8  # Qwen2-VL's 16/24/24 split of 64 rotary pairs, scaled
    mrope = [head_dim // 2 - 2 * spatial, spatial, spatial]
    ids = token_ids(tokenizer)
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
    return seeded_model(Qwen2VLForConditionalGeneration, config, seed, attn_implementation)


def build_image_processor(min_pixels: int = 4 * 28 * 28, max_pixels: int = 64 * 28 * 28) -> Any:
    """Qwen2-VL's image processor (PIL backend: patch 14, merge 2), offline."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)


@register_backbone
class Qwen2VLBackbone(Backbone):
    model_types = ("qwen2_vl", "qwen2_5_vl")
    chat = QWEN_CHAT
    default_eos_token = "<|endoftext|>"

    @classmethod
    def build_tiny(cls, size: str = "tiny", seed: int = 0) -> tuple[Any, Any, Any, dict[str, Any]]:
        tokenizer = build_tokenizer()
        return (build_tiny_model(tokenizer, size=size, seed=seed), tokenizer, build_image_processor(),
                dict(COMMON_DEFAULTS, min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28, video_max_pixels=4 * 28 * 28))

    @classmethod
    def model_class(cls, model_type: str) -> Any:
        if model_type == "qwen2_5_vl":
            from transformers import Qwen2_5_VLForConditionalGeneration

            return Qwen2_5_VLForConditionalGeneration
        from transformers import Qwen2VLForConditionalGeneration

        return Qwen2VLForConditionalGeneration

    @classmethod
    def load(cls, path: str | Path, dtype: torch.dtype | None, attn_implementation: str | None) -> "Qwen2VLBackbone":
        from transformers import AutoConfig, AutoTokenizer
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        config = AutoConfig.from_pretrained(path)
        kwargs: dict[str, Any] = {"attn_implementation": attn_implementation or "sdpa"}
        if dtype is not None:
            kwargs["dtype"] = dtype
        model = cls.model_class(config.model_type).from_pretrained(path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path)
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(path)
        return cls(model, tokenizer, image_processor, str(path))

    def save(self, directory: str | Path, state_dict: dict[str, Any] | None = None) -> None:
        self.model.save_pretrained(directory, state_dict=state_dict)
        self.tokenizer.save_pretrained(directory)
        self.image_processor.save_pretrained(directory)

    # ---- geometry --------------------------------------------------------------------------------
    @property
    def vision_config(self) -> Any:
        return self.model.config.vision_config

    @property
    def patch_size(self) -> int:
        return int(self.vision_config.patch_size)

    @property
    def merge_size(self) -> int:
        return int(self.vision_config.spatial_merge_size)

    @property
    def temporal_patch_size(self) -> int:
        return int(self.vision_config.temporal_patch_size)

    @property
    def embedding_dim(self) -> int:
        text_config = getattr(self.model.config, "text_config", self.model.config)
        return int(text_config.hidden_size)

    def _visual(self, kind: str, frames: list[Image.Image], min_pixels: int, max_pixels: int) -> VisualInput:
        factor = self.patch_size * self.merge_size
        height, width = smart_resize(frames[0].height, frames[0].width, factor, min_pixels, max_pixels)
        pixels, grid = ordered_patches(resized_frames(frames, height, width), self.image_processor.image_mean,
                                       self.image_processor.image_std, self.temporal_patch_size, self.patch_size,
                                       self.merge_size)
        tokens = grid[0] * grid[1] * grid[2] // (self.merge_size ** 2)
        return VisualInput(kind, pixels, grid, tokens)

    def preprocess_image(self, image: Image.Image, config: EmbeddingConfig) -> VisualInput:
        return self._visual("image", [image], config.min_pixels, config.max_pixels)

    def preprocess_video(self, frames: list[Image.Image], config: EmbeddingConfig) -> VisualInput:
        low = config.video_min_pixels or config.min_pixels
        return self._visual("video", frames, low, max(low, config.video_max_pixels))

    # ---- the token estimate: smart_resize's grid, one token per merged patch --------------------------
    def grid_tokens(self, size: tuple[int, int] | None, min_pixels: int, max_pixels: int) -> int:
        """Visual tokens of one image of `size` (width, height) resized within the bounds (None: at the maximum)."""
        factor = self.patch_size * self.merge_size
        if size is None:
            return max_pixels // factor ** 2
        try:
            height, width = smart_resize(size[1], size[0], factor, min_pixels, max_pixels)
        except InputError:  # decoding refuses it with the reason; the estimate only needs a number
            return max_pixels // factor ** 2
        return (height // factor) * (width // factor)

    def _markers(self, config: EmbeddingConfig) -> int:
        return 2 if config.vision_markers else 0

    def image_tokens(self, sizes: list[tuple[int, int] | None], frames: int, config: EmbeddingConfig) -> int:
        tokens = sum(self.grid_tokens(size, config.min_pixels, config.max_pixels) for size in sizes)
        tokens += frames * self._frame_tokens(config) if frames else 0
        return tokens + (len(sizes) + frames) * self._markers(config)

    def video_tokens(self, config: EmbeddingConfig) -> int:
        return math.ceil(config.frames.budget_frames / self.temporal_patch_size) * self._frame_tokens(config) \
            + self._markers(config)

    def _frame_tokens(self, config: EmbeddingConfig) -> int:
        """Visual tokens of one video frame (or temporal patch) under the per-frame bounds, at their maximum."""
        bounds = frame_bounds(config)
        frame = (config.image_square,) * 2 if config.image_square is not None else None
        return self.grid_tokens(frame, bounds.min_pixels, bounds.max_pixels)

    def media_placeholder(self, visual: VisualInput) -> list[int]:
        config = self.model.config
        token = config.image_token_id if visual.kind == "image" else config.video_token_id
        return [config.vision_start_token_id] + [token] * visual.num_tokens + [config.vision_end_token_id]

    def vision_marker_ids(self) -> tuple[int, int]:
        config = self.model.config
        return int(config.vision_start_token_id), int(config.vision_end_token_id)

    # ---- positions -------------------------------------------------------------------------------
    def _video_time_scale(self) -> float:
        """Qwen2.5-VL spaces temporal positions by seconds (2 fps sampling assumed); Qwen2-VL by frame pair."""
        if self.model.config.model_type == "qwen2_5_vl":
            tokens_per_second = getattr(self.vision_config, "tokens_per_second", 2)
            return float(tokens_per_second) * self.temporal_patch_size / 2.0
        return 1.0

    def _mrope_row(self, ids: list[int], visuals: list[VisualInput]) -> torch.Tensor:
        """3 x len(ids) positions of one unpadded row: text counts on from the last position; each visual block
        spans (t, h, w) grid positions starting there, and the text after it continues at max + 1."""
        config = self.model.config
        media = np.flatnonzero(np.isin(np.asarray(ids), [config.image_token_id, config.video_token_id]))
        positions = np.empty((3, len(ids)), dtype=np.int64)
        cursor, start = 0, 0
        for visual in visuals:
            first = int(np.searchsorted(media, cursor))  # the next media token after the previous block
            if first == len(media):
                break
            block_start = int(media[first])
            positions[:, cursor:block_start] = start + np.arange(block_start - cursor)
            start += block_start - cursor
            t, h, w = visual.grid_thw
            h, w = h // self.merge_size, w // self.merge_size
            scale = self._video_time_scale() if visual.kind == "video" else 1.0
            times = (np.arange(t, dtype=np.float32) * np.float32(scale)).astype(np.int64)  # as torch: float32
            grid = np.stack(np.meshgrid(times, np.arange(h), np.arange(w),
                                        indexing="ij")).reshape(3, -1) + start
            positions[:, block_start: block_start + grid.shape[1]] = grid
            cursor = block_start + grid.shape[1]
            start = int(grid.max()) + 1
        positions[:, cursor:] = start + np.arange(len(ids) - cursor)
        return torch.from_numpy(positions)

    def position_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, visuals: list[list[VisualInput]],
                     config: EmbeddingConfig) -> torch.Tensor:
        """3 x B x L position ids, counted from each row's first real token (so padding never shifts them)."""
        if config.positions == "1d":
            flat = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
            return flat.unsqueeze(0).expand(3, -1, -1).contiguous()
        positions = torch.ones(3, *input_ids.shape, dtype=torch.long)
        for row in range(input_ids.shape[0]):
            real = attention_mask[row].bool()
            ids = input_ids[row][real].tolist()
            positions[:, row, real] = self._mrope_row(ids, visuals[row])
        return positions

    # ---- forward ---------------------------------------------------------------------------------
    def language_mask(self, mask: torch.Tensor | None) -> Any:
        """The mask argument of the language model: Qwen2-VL's takes one 4-D mask per attention kind (a 2-D mask,
        or None for packed flash attention, it expands itself)."""
        return mask if mask is None or mask.ndim == 2 else {"full_attention": mask, "sliding_attention": mask}

    def hidden_states(self, batch: dict[str, torch.Tensor], config: EmbeddingConfig) -> torch.Tensor:
        inner = self.hf_model.model
        dtype = self.hf_model.dtype
        language = language_inputs(batch["input_ids"], batch, config, self.hf_model.config, dtype, self.pad_token_id)
        kwargs: dict[str, Any] = {}
        if "image_pixel_values" in batch:
            kwargs["pixel_values"] = batch["image_pixel_values"].to(dtype)
            kwargs["image_grid_thw"] = batch["image_grid_thw"]
        if "video_pixel_values" in batch:
            kwargs["pixel_values_videos"] = batch["video_pixel_values"].to(dtype)
            kwargs["video_grid_thw"] = batch["video_grid_thw"]
        outputs = inner(
            input_ids=language.tokens,
            attention_mask=self.language_mask(language.mask),
            position_ids=language.position_ids,
            use_cache=False,
            **kwargs,
        )
        return language.hidden(outputs.last_hidden_state)
