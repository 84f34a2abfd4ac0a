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


# Share of a candidate list's distractors that are unrelated to the query; the rest differ from the gold in
# exactly one thing (an attribute, a relation, a letter). MMEB's lists are mostly other dataset items, so an
# easy share keeps a small model off the floor while the one-change distractors keep the benchmark unsaturated.
EASY_SHARE = 0.5


def pick_distractors(hard: Sequence, easy: Sequence, total: int,
                     easy_share: float | None = None) -> list:
    """`total` distractors, about `easy_share` of them easy (unrelated) and the rest hard.

    Interleaved, hard first, so that every prefix keeps the mix: callers truncate after de-duplication,
    and the training split takes the first distractor as its hard negative.
    """
    share = EASY_SHARE if easy_share is None else easy_share
    hard, easy = list(hard), list(easy)
    chosen: list = []
    while len(chosen) < total and (hard or easy):
        wants_easy = int((len(chosen) + 1) * share) > int(len(chosen) * share)
        chosen.append((easy if (wants_easy and easy) or not hard else hard).pop(0))
    return chosen


def text_candidates(gold: str, distractors: Sequence[str], total: int) -> list[tuple[str, None]] | None:
    """The gold text then distinct distractors, `total` in all (None when there are too few)."""
    texts = unique([gold] + [d for d in distractors if d != gold])[:total]
    return [(t, None) for t in texts] if len(texts) == total else None


def other_kind_answers(rng: random.Random, kind: str, answers: dict[str, Sequence[str]]) -> list[str]:
    """Easy VQA distractors: answers to other kinds of question (MMEB's answer lists mix answer types)."""
    pool = [a for other, options in answers.items() if other != kind for a in options]
    rng.shuffle(pool)
    return pool


def unique(items: Sequence, key: Callable = lambda x: x) -> list:
    seen, out = set(), []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out
