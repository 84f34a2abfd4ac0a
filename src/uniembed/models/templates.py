"""Prompt templates: where the system turn, media, instruction, text and suffix go.

The template yields a list of segments; the backbone turns them into token ids (expanding each
media segment into its visual tokens) and marks the instruction span for `mean_no_instruction` pooling.
"""
from __future__ import annotations

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


def summary_suffix(item: Item) -> str:
    """UNITE/UniME's one-word summary prompt, naming the item's main modality."""
    if item.modality & VIDEO:
        noun = "video"
    elif item.modality & IMAGE:
        noun = "image"
    else:
        noun = "sentence"
    return f"\nSummarize above {noun} in one word:"


def content_segments(item: Item, config: EmbeddingConfig, num_media: tuple[int, int],
                     instruction: str | None = None, media_offset: tuple[int, int] = (0, 0)) -> list[Segment]:
    """The user-turn content of one item: its media, `instruction` and text in the configured order.

    `media_offset` shifts the media indices, so several items can share one prompt (the re-ranker's
    query + candidate) with their decoded media concatenated in order.
    """
    num_images, num_videos = num_media
    media = [Segment("image", index=media_offset[0] + i) for i in range(num_images)]
    media += [Segment("video", index=media_offset[1] + i) for i in range(num_videos)]
    user: list[Segment] = []
    if config.images_first:
        user += media
    if instruction:
        user.append(Segment("instruction", instruction))
        if item.text:
            user.append(Segment("text", config.instruction_separator))
    if item.text:
        user.append(Segment("text", item.text))
    if not config.images_first:
        user += media
    return user


def chat_segments(user: list[Segment], config: EmbeddingConfig, chat: ChatFormat, system: str | None) -> list[Segment]:
    """Wrap user-turn content in the chat template (system turn, user turn, assistant start) when enabled."""
    if not config.chat_template:
        return list(user)
    segments = [Segment("text", f"{chat.system_start}{system}{chat.turn_end}")] if system else []
    segments.append(Segment("text", chat.user_start))
    segments += user
    segments.append(Segment("text", f"{chat.turn_end}{chat.assistant_start}"))
    return segments


def build_segments(item: Item, config: EmbeddingConfig, chat: ChatFormat, num_media: tuple[int, int]) -> list[Segment]:
    """Lay out one item as segments. `num_media` = (images, videos) after frame policy is applied."""
    instruction = item.instruction if config.instruction_placement != "none" else None
    system = config.system_prompt
    if instruction and config.instruction_placement == "system":
        system, instruction = instruction, None
    user = content_segments(item, config, num_media, instruction)
    if config.summary_suffix:
        user.append(Segment("text", summary_suffix(item)))
    segments = chat_segments(user, config, chat, system)
    if config.pooling == "eos" and config.eos_token:
        segments.append(Segment("text", config.eos_token))
    return segments
