"""The video world: a few objects that move, grow, shrink or stay still, in one or several segments.

A video is fully described by its movers (shape, colour, start position and radius, one motion per segment),
so frames can be drawn in any process in any order and come out identical. Near-duplicate videos differ in
one motion, one colour or one shape, or have the motions of two objects swapped (same words, different video).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

from .language import join_list
from .world import BACKGROUNDS, COLOUR_NAMES, SHAPES, Desc

MOTIONS = ("moves left", "moves right", "moves up", "moves down", "grows", "shrinks", "stays still")
MOVING = MOTIONS[:-1]
# extra answers for "how does X move" questions, never shown
EXTRA_MOTIONS = ("spins", "blinks", "moves diagonally", "changes colour", "disappears")
TRAVEL = 20  # pixels a moving object travels in one segment
FRAME_SIZE = 64


@dataclass(frozen=True)
class Mover:
    shape: str
    colour: str
    x: float
    y: float
    radius: float
    motions: tuple[str, ...]

    def desc(self) -> Desc:
        return Desc(self.colour, self.shape)


@dataclass(frozen=True)
class Video:
    movers: tuple[Mover, ...]
    background: int = 0
    segments: int = 1
    frames_per_segment: int = 16

    @property
    def num_frames(self) -> int:
        return self.segments * self.frames_per_segment

    def key(self) -> tuple:
        return tuple(sorted((m.colour, m.shape, m.motions) for m in self.movers))

    def with_mover(self, index: int, mover: Mover) -> "Video":
        movers = list(self.movers)
        movers[index] = mover
        return replace(self, movers=tuple(movers))


def mover_state(mover: Mover, frame: int, frames_per_segment: int) -> tuple[float, float, float]:
    """Centre and radius of a mover at a global frame index."""
    x, y, r = mover.x, mover.y, mover.radius
    for segment, motion in enumerate(mover.motions):
        start = segment * frames_per_segment
        if frame < start:
            break
        p = min(frame - start, frames_per_segment - 1) / (frames_per_segment - 1)
        dx = {"moves left": -TRAVEL, "moves right": TRAVEL}.get(motion, 0) * p
        dy = {"moves up": -TRAVEL, "moves down": TRAVEL}.get(motion, 0) * p
        scale = {"grows": 1 + 0.8 * p, "shrinks": 1 - 0.45 * p}.get(motion, 1.0)
        x, y, r = x + dx, y + dy, r * scale
        if frame < start + frames_per_segment:
            break
    return x, y, r


def _fits(mover: Mover, video_frames: int, frames_per_segment: int) -> bool:
    for frame in range(0, video_frames, max(1, frames_per_segment // 4)):
        x, y, r = mover_state(mover, frame, frames_per_segment)
        if not (r + 1 <= x <= FRAME_SIZE - r - 1 and r + 1 <= y <= FRAME_SIZE - r - 1):
            return False
    x, y, r = mover_state(mover, video_frames - 1, frames_per_segment)
    return r + 1 <= x <= FRAME_SIZE - r - 1 and r + 1 <= y <= FRAME_SIZE - r - 1


def place_mover(rng: random.Random, shape: str, colour: str, motions: tuple[str, ...], frames_per_segment: int) -> Mover:
    """A mover with a random start that keeps it inside the frame for the whole video."""
    total = len(motions) * frames_per_segment
    for _ in range(200):
        radius = rng.choice((6.0, 8.0))
        mover = Mover(shape, colour, rng.uniform(radius + 1, FRAME_SIZE - radius - 1),
                      rng.uniform(radius + 1, FRAME_SIZE - radius - 1), radius, motions)
        if _fits(mover, total, frames_per_segment):
            return mover
    return Mover(shape, colour, FRAME_SIZE / 2, FRAME_SIZE / 2, 6.0, motions)  # centre fits every motion set used


def random_kinds(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """`n` distinct (colour, shape) kinds; half the time two share a colour or a shape (harder to tell apart)."""
    kinds: list[tuple[str, str]] = []
    while len(kinds) < n:
        if kinds and rng.random() < 0.5:
            colour, shape = kinds[-1]
            kind = (colour, rng.choice(SHAPES)) if rng.random() < 0.5 else (rng.choice(COLOUR_NAMES), shape)
        else:
            kind = (rng.choice(COLOUR_NAMES), rng.choice(SHAPES))
        if kind not in kinds:
            kinds.append(kind)
    return kinds


def random_video(rng: random.Random, n_min: int = 2, n_max: int = 3, segments: int = 1,
                 frames_per_segment: int = 16, distinct_motions: bool = True) -> Video:
    """A video whose movers have distinct kinds and (by default) distinct motions."""
    n = rng.randint(n_min, n_max)
    kinds = random_kinds(rng, n)
    movers = []
    if segments == 1:
        motions = rng.sample(MOTIONS, n) if distinct_motions else [rng.choice(MOTIONS) for _ in range(n)]
        for (colour, shape), motion in zip(kinds, motions):
            movers.append(place_mover(rng, shape, colour, (motion,), frames_per_segment))
    else:  # one mover acts per segment, the others stay still
        actors = [rng.randrange(n) for _ in range(segments)]
        acts = [rng.choice(MOVING) for _ in range(segments)]
        for k, (colour, shape) in enumerate(kinds):
            motions = tuple(acts[s] if actors[s] == k else "stays still" for s in range(segments))
            movers.append(place_mover(rng, shape, colour, motions, frames_per_segment))
    return Video(tuple(movers), rng.randrange(len(BACKGROUNDS)), segments, frames_per_segment)


def video_caption(video: Video) -> str:
    """'the red circle moves left, the blue square grows and the green star stays still.' (one segment)"""
    return join_list([f"the {m.desc().words()} {m.motions[0]}" for m in video.movers]) + "."


def video_variants(video: Video, rng: random.Random, wanted: int, forbidden: set, tries: int = 200) -> list[Video]:
    """Single-segment near-duplicates: one motion changed, two motions swapped, one colour or shape changed."""
    found: list[Video] = []
    seen = set(forbidden) | {video.key()}
    for _ in range(tries):
        if len(found) >= wanted:
            break
        i = rng.randrange(len(video.movers))
        mover = video.movers[i]
        kind = rng.choice(("motion", "swap", "swap", "colour", "shape"))
        if kind == "swap" and len(video.movers) > 1:
            j = rng.choice([k for k in range(len(video.movers)) if k != i])
            other = video.movers[j]
            a = place_mover(rng, mover.shape, mover.colour, other.motions, video.frames_per_segment)
            b = place_mover(rng, other.shape, other.colour, mover.motions, video.frames_per_segment)
            variant = video.with_mover(i, a).with_mover(j, b)
        elif kind == "motion":
            motion = rng.choice([m for m in MOTIONS if m != mover.motions[0]])
            variant = video.with_mover(i, place_mover(rng, mover.shape, mover.colour, (motion,), video.frames_per_segment))
        elif kind == "colour":
            variant = video.with_mover(i, replace(mover, colour=rng.choice([c for c in COLOUR_NAMES if c != mover.colour])))
        else:
            variant = video.with_mover(i, replace(mover, shape=rng.choice([s for s in SHAPES if s != mover.shape])))
        kinds = [(m.colour, m.shape) for m in variant.movers]
        if len(set(kinds)) != len(kinds) or variant.key() in seen:
            continue
        seen.add(variant.key())
        found.append(variant)
    return found
