"""Per-task embedding settings of an evaluation: the benchmark's frame sampling and the model profile's
instructions and prompt layout.

A benchmark fixes how a task's videos are sampled (MMEB-V2: 8 frames of at most 64 saved, `EvalTask.
video_sampling`); a published family's evaluation code puts fixed instructions on some tasks (MMEB-V2's
visual-document queries: "Find a document image that matches the given query:") and sometimes lays those
prompts out differently. `profile_groups` applies all three once, after the suite's tasks are loaded.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Sequence

from ..data.examples import EvalTask
from ..frames import FramePolicy
from ..inputs import IMAGE, VIDEO, Item
from ..models.profile import Profile, get_profile
from ..encoding import Encoder

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


def sampling_options(task: EvalTask, profile: Profile | None, policy: FramePolicy) -> dict[str, Any]:
    """The benchmark's frame sampling for `task`'s videos applied to the encoder's `policy`, as embedding
    options. A field the profile pins (its authors' own evaluation, e.g. RzenEmbed's 8 frames as images) keeps
    the encoder's value."""
    sampling = dict(task.video_sampling or {})
    unknown = set(sampling) - set(FramePolicy.fields())
    if unknown:
        raise ValueError(f"task {task.name}: unknown video_sampling key(s) {sorted(unknown)}; "
                         f"known: {list(FramePolicy.fields())}")
    pinned = set((profile.embedding.get("frames") or {}) if profile is not None else ())
    changes = {key: value for key, value in sampling.items() if key not in pinned}
    return {"frames": policy.updated(changes)} if changes else {}


def profile_groups(encoder: Encoder, tasks: Sequence[EvalTask]) -> list[tuple[Encoder, list[EvalTask]]]:
    """Tasks with the benchmark's frame sampling and the encoder's profile applied, grouped by the embedding
    options they need; each group comes with the encoder to run it (the same model under those options).
    An encoder without options (a plain `encode` object, not an `Embedder`) runs every task as it is."""
    profile = encoder_profile(encoder)
    if not tasks or not hasattr(encoder, "with_options"):
        return [(encoder, list(tasks))]
    config = encoder.config
    groups: dict[tuple[tuple[str, Any], ...], list[EvalTask]] = {}
    for task in tasks:
        has_video = any(item.video is not None for item in (*task.queries, *task.candidates))
        options = sampling_options(task, profile, config.frames) if has_video else {}
        if profile is not None:
            options.update(profile.task_layout(task.name))
            task = with_task_instructions(task, profile)
        changed = {key: value for key, value in options.items() if getattr(config, key) != value}
        groups.setdefault(tuple(sorted(changed.items())), []).append(task)
    if profile is not None:
        log.info("profile %s: task instructions applied to %d of %d tasks", profile.name,
                 sum(profile.task_instructions(t.name) is not None for t in tasks), len(tasks))
    result = []
    for options, group in groups.items():
        if options:
            log.info("%s: embedded with %s", ", ".join(t.name for t in group), dict(options))
        result.append((encoder.with_options(**dict(options)) if options else encoder, group))
    return result
