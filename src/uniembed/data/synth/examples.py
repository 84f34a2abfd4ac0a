"""The record every task builder returns, before it is written in a benchmark layout.

A builder returns `SynthExample`s: a query and its candidate list (gold first), where pictures and videos are
still descriptions (`Media`). The writers decide file names, render the media and write the rows; the same
example becomes a test row (all candidates) or a training row (gold positive plus the first hard negative).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .render import Picture


@dataclass(frozen=True)
class Media:
    """A picture, or a video given by its spec and a frame range; `name` shares one file between rows."""

    picture: Picture | None = None
    video: object | None = None  # motion.Video
    frames: tuple[int, int] | None = None
    name: str | None = None

    @property
    def is_video(self) -> bool:
        return self.video is not None


@dataclass
class SynthExample:
    query_text: str
    query_media: Media | None
    candidates: list[tuple[str, Media | None]]
    keys: set = field(default_factory=set)


@dataclass(frozen=True)
class TaskDef:
    """One synthetic task: how to build an example, and where it sits among MMEB-V2's meta-tasks."""

    name: str
    group: str  # image | video | visdoc | text
    meta_task: str  # classification | vqa | retrieval | grounding | moment_retrieval
    build: Callable[[random.Random], SynthExample | None] | None = None
    in_distribution: bool = True
    ranking: str = "local"
    mirrors: str = ""


def pick_distractors(rng: random.Random, hard: Sequence, easy: Sequence, total: int, easy_share: float) -> list:
    """`total` distractors: mostly hard (one change from the gold), a few easy ones (unrelated)."""
    n_easy = min(len(easy), int(round(total * easy_share)))
    chosen = list(hard[: total - n_easy])
    chosen += list(easy[: total - len(chosen)])
    return chosen[:total]


def unique(items: Sequence, key: Callable = lambda x: x) -> list:
    seen, out = set(), []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out
