"""Qwen3-VL: the Qwen2-VL token layout with 16-px patches (32x32 px per visual token), DeepStack and timestamps.

What differs from Qwen2-VL, and where it lives:
- geometry (patch 16, merge 2, temporal patch 2) is read from the checkpoint's vision config, so the
  Qwen2-VL pixel code applies unchanged (factor 32 instead of 28);
- a video is one block per temporal patch, each preceded by its timestamp text `<{t:.1f} seconds>`
  (transformers' Qwen3VLProcessor.replace_video_token), and M-RoPE counts each block as a (1, h, w) grid
  (Qwen3VLModel.get_rope_index splits video_grid_thw per frame);
- interleaved M-RoPE and the DeepStack injection of vision features into the first LM layers happen
  inside transformers' Qwen3VLModel, which this backbone calls with its own positions and mask.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, ClassVar

import torch
from PIL import Image

from ...frames import FramePolicy
from ..config import EmbeddingConfig
from ..tiny import COMMON_DEFAULTS, build_tokenizer, seeded_model, tiny_size, token_ids
from .base import VisualInput, register_backbone
from .qwen2_vl import Qwen2VLBackbone

QWEN3_VL_TOKEN_PIXELS = 32 * 32  # one visual token: a 2x2 merge of 16-px patches


def frame_seconds(frames: list[Image.Image], policy: FramePolicy) -> list[float]:
    """Each frame's time in seconds: the decoder's timestamp when it kept one, else its index at the policy's
    frame-list rate (`FramePolicy.list_seconds`)."""
    fallback = policy.list_seconds(len(frames))
    return [float(frame.info.get("seconds", fallback[index])) for index, frame in enumerate(frames)]


QWEN3_VL_PATCH = 16  # Qwen3-VL: 16-px patches merged 2x2, i.e. 32x32 px per visual token
QWEN3_VL_FACTOR = 2 * QWEN3_VL_PATCH


def build_tiny_qwen3_vl(tokenizer: Any, size: str = "tiny", seed: int = 0, attn_implementation: str = "sdpa") -> Any:
    """A randomly initialised Qwen3-VL: DeepStack features from vision block 0 injected after LM layer 0,
    interleaved M-RoPE, 16-px patches merged 2x2, temporal patches of 2 frames."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    s = tiny_size(size)
    head_dim = s.hidden // s.heads
    spatial = head_dim // 8  # Qwen3-VL's 24/20/20 of 64 rotary pairs, scaled (height/width interleave with time)
    ids = token_ids(tokenizer)
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
    return seeded_model(Qwen3VLForConditionalGeneration, config, seed, attn_implementation)


def build_qwen3_vl_image_processor(min_pixels: int = 4 * QWEN3_VL_FACTOR ** 2,
                                   max_pixels: int = 64 * QWEN3_VL_FACTOR ** 2) -> Any:
    """Qwen3-VL's image processor settings (patch 16, merge 2, mean/std 0.5), offline."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels, patch_size=QWEN3_VL_PATCH,
                                    merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3)


@register_backbone
class Qwen3VLBackbone(Qwen2VLBackbone):
    model_types = ("qwen3_vl",)
    config_defaults: ClassVar[dict[str, Any]] = {
        "min_pixels": 4 * QWEN3_VL_TOKEN_PIXELS,
        "max_pixels": 1280 * QWEN3_VL_TOKEN_PIXELS,
        "video_max_pixels": 180 * QWEN3_VL_TOKEN_PIXELS,
    }

    @classmethod
    def build_tiny(cls, size: str = "tiny", seed: int = 0) -> tuple[Any, Any, Any, dict[str, Any]]:
        tokenizer = build_tokenizer()
        token = QWEN3_VL_FACTOR ** 2
        return (build_tiny_qwen3_vl(tokenizer, size=size, seed=seed), tokenizer, build_qwen3_vl_image_processor(),
                dict(COMMON_DEFAULTS, min_pixels=4 * token, max_pixels=16 * token, video_max_pixels=4 * token))

    @classmethod
    def model_class(cls, model_type: str) -> Any:
        from transformers import Qwen3VLForConditionalGeneration

        return Qwen3VLForConditionalGeneration

    # ---- video: one timestamped block per temporal patch ------------------------------------------
    def preprocess_video(self, frames: list[Image.Image], config: EmbeddingConfig) -> VisualInput:
        visual = super().preprocess_video(frames, config)
        seconds = frame_seconds(frames, config.frames)
        tp = self.temporal_patch_size
        seconds += [seconds[-1]] * (-len(seconds) % tp)  # padded like the frames (last one repeated)
        # each temporal patch is stamped with the mean time of its first and last frame
        visual.timestamps = tuple((seconds[i] + seconds[i + tp - 1]) / 2 for i in range(0, len(seconds), tp))
        return visual

    def media_placeholder(self, visual: VisualInput) -> list[int]:
        if visual.kind == "image":
            return super().media_placeholder(visual)
        config = self.model.config
        t, h, w = visual.grid_thw
        per_frame = [config.vision_start_token_id] + [config.video_token_id] * (h * w // self.merge_size ** 2) \
            + [config.vision_end_token_id]
        ids: list[int] = []
        for second in visual.timestamps or [float(i) for i in range(t)]:
            ids += self._stamp_ids(second) + per_frame
        return ids

    def video_tokens(self, config: EmbeddingConfig) -> int:
        """Per temporal patch: its timestamp text, the vision start/end tokens (always written) and the frame's grid."""
        blocks = math.ceil(config.frames.budget_frames / self.temporal_patch_size)
        return blocks * (len(self._stamp_ids(0.0)) + 2 + self._frame_tokens(config))

    def _stamp_ids(self, second: float) -> list[int]:
        cache = self.__dict__.setdefault("_stamps", {})
        text = f"<{second:.1f} seconds>"
        if text not in cache:
            cache[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return list(cache[text])

    def _mrope_row(self, ids: list[int], visuals: list[VisualInput]) -> torch.Tensor:
        """A video counts as one (1, h, w) block per temporal patch, as transformers' Qwen3-VL splits it."""
        blocks: list[VisualInput] = []
        for visual in visuals:
            t, h, w = visual.grid_thw
            frame = replace(visual, kind="image", grid_thw=(1, h, w)) if visual.kind == "video" else visual
            blocks += [frame] * (t if visual.kind == "video" else 1)
        return super()._mrope_row(ids, blocks)

    # ---- forward ---------------------------------------------------------------------------------
    def language_mask(self, mask: torch.Tensor | None) -> Any:
        """Qwen3-VL's text model takes the 4-D mask itself (transformers' Qwen3VLModel runs DeepStack and the
        interleaved M-RoPE on uniembed's positions)."""
        return mask
