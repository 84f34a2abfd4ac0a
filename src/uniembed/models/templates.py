"""Prompt templates: where the system turn, media, instruction, text and suffix go.

The template yields a list of segments; the backbone turns them into token ids (expanding each
media segment into its visual tokens) and marks the instruction span for `mean_no_instruction` pooling.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

from ..inputs import IMAGE, VIDEO, Item
from .config import EmbeddingConfig

SegmentKind = Literal["text", "instruction", "image", "video"]


@dataclass(frozen=True)
class Segment:
    kind: SegmentKind
    text: str = ""
    index: int = 0  # which image / video of the item


@dataclass(frozen=True)
class ChatFormat:
    """The turn markers of a backbone's chat template."""

    system_start: str
    user_start: str
    turn_end: str
    assistant_start: str


def summary_suffix(item: Item, config: EmbeddingConfig | None = None) -> str:
    """The one-word summary prompt (UNITE, UniME), naming the item's main modality or (`summary_modalities:
    all`) every present one, in the order sentence, image, video."""
    template = config.summary_template if config else EmbeddingConfig.summary_template
    has_text = bool(item.text or item.instruction)
    present = [noun for noun, here in (("sentence", has_text), ("image", bool(item.modality & IMAGE)),
                                       ("video", bool(item.modality & VIDEO))) if here]
    if config is not None and config.summary_modalities != "main" and present:
        if config.summary_modalities == "all_media_first":
            present = present[1:] + present[:1] if present[0] == "sentence" else present
        return template.format(modality=" and ".join(present))
    if item.modality & VIDEO:
        noun = "video"
    elif item.modality & IMAGE:
        noun = "image"
    else:
        noun = "sentence"
    return template.format(modality=noun)


def punctuated(instruction: str, mark: str) -> str:
    """The stripped instruction, with `mark` appended unless it ends in punctuation (Unicode category P*), as
    Qwen3-VL-Embedding writes its system turn."""
    # QwenLM/Qwen3-VL-Embedding@8ce3aab1fbcc7b7143b094f0b2005dd89e7246b9 src/models/qwen3_vl_embedding.py:231-234
    instruction = instruction.strip()
    if instruction and not unicodedata.category(instruction[-1]).startswith("P"):
        return instruction + mark
    return instruction


def content_segments(item: Item, config: EmbeddingConfig, num_media: tuple[int, int],
                     instruction: str | None = None, media_offset: tuple[int, int] = (0, 0)) -> list[Segment]:
    """The user-turn content of one item: its media, `instruction` and text in the configured order.

    `media_offset` shifts the media indices, so several items can share one prompt (the re-ranker's
    query + candidate) with their decoded media concatenated in order.
    """
    num_images, num_videos = num_media
    media = [Segment("image", index=media_offset[0] + i) for i in range(num_images)]
    media += [Segment("video", index=media_offset[1] + i) for i in range(num_videos)]
    words: list[Segment] = []
    if instruction:
        words.append(Segment("instruction", instruction))
        if item.text:
            words.append(Segment("text", config.instruction_separator))
    if item.text:
        words.append(Segment("text", item.text))
    if instruction and config.instruction_suffix:
        words.append(Segment("text", config.instruction_suffix))
    separator = [Segment("text", config.media_separator)] if media and words and config.media_separator else []
    if config.images_first:
        return media + separator + words
    return words + separator + media


def chat_segments(user: list[Segment], config: EmbeddingConfig, chat: ChatFormat, system: str | None) -> list[Segment]:
    """Wrap user-turn content in the chat template (system turn, user turn, assistant start) when enabled."""
    if not config.chat_template:
        return list(user)
    segments = [Segment("text", f"{chat.system_start}{system}{chat.turn_end}")] if system else []
    segments.append(Segment("text", chat.user_start))
    segments += user
    segments.append(Segment("text", f"{chat.turn_end}{chat.assistant_start}{config.assistant_text}"))
    return segments


def build_segments(item: Item, config: EmbeddingConfig, chat: ChatFormat, num_media: tuple[int, int]) -> list[Segment]:
    """Lay out one item as segments. `num_media` = (images, videos) after frame policy is applied."""
    instruction = item.instruction if config.instruction_placement != "none" else None
    if instruction and config.instruction_punctuation is not None:
        instruction = punctuated(instruction, config.instruction_punctuation)
    system = config.system_prompt
    if instruction and config.instruction_placement == "system":
        system, instruction = instruction, None
    user = content_segments(item, config, num_media, instruction)
    if config.summary_suffix:
        user.append(Segment("text", summary_suffix(item, config)))
    segments = chat_segments(user, config, chat, system)
    if config.pooling == "eos" and config.eos_token:
        segments.append(Segment("text", config.eos_token))
    return segments
