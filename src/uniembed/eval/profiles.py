"""The model profile's share of an evaluation: per-task instructions and per-task prompt layout.

A published family's evaluation code puts fixed instructions on some tasks (MMEB-V2's visual-document
queries: "Find a document image that matches the given query:") and sometimes lays those prompts out
differently; `profile_groups` applies both once, after the suite's tasks are loaded.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Sequence

from ..data.examples import EvalTask
from ..inputs import IMAGE, VIDEO, Item
from ..models.profile import Profile, get_profile
from .encoding import Encoder

log = logging.getLogger(__name__)


def encoder_profile(encoder: Encoder) -> Profile | None:
    """The profile an encoder (an `Embedder`) embeds under, if any."""
    name = getattr(getattr(encoder, "config", None), "profile", None)
    return get_profile(name) if name else None


def with_task_instructions(task: EvalTask, profile: Profile) -> EvalTask:
    """`task` with the profile's instructions for it: every query gets the query instruction, every candidate
    that has an image or video the candidate instruction (text candidates such as labels keep theirs)."""
    found = profile.task_instructions(task.name)
    if found is None:
        return task
    query, candidate = found

    def relabel(item: Item, instruction: str | None, media_only: bool) -> Item:
        if instruction is None or (media_only and not item.modality & (IMAGE | VIDEO)):
            return item
        return Item(item.text, item.image, item.images, item.video, instruction or None)

    return replace(task, queries=[relabel(q, query, False) for q in task.queries],
                   candidates=[relabel(c, candidate, True) for c in task.candidates])


def profile_groups(encoder: Encoder, tasks: Sequence[EvalTask]) -> list[tuple[Encoder, list[EvalTask]]]:
    """Tasks with the encoder's profile applied, grouped by the prompt layout they need; each group comes
    with the encoder to run it (the same model under that layout). Without a profile: one group, unchanged."""
    profile = encoder_profile(encoder)
    if profile is None or not tasks:
        return [(encoder, list(tasks))]
    groups: dict[tuple[tuple[str, Any], ...], list[EvalTask]] = {}
    for task in tasks:
        layout = tuple(sorted(profile.task_layout(task.name).items()))
        groups.setdefault(layout, []).append(with_task_instructions(task, profile))
    log.info("profile %s: task instructions applied to %d of %d tasks", profile.name,
             sum(profile.task_instructions(t.name) is not None for t in tasks), len(tasks))
    result = []
    for layout, group in groups.items():
        runner = encoder.with_options(**dict(layout)) if layout else encoder
        result.append((runner, group))
    return result
