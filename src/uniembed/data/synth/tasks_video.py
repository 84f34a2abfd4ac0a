"""Video tasks (MMEB-V2 counterparts): motion classification, video QA, moment retrieval (local) and
text-to-video retrieval (global pool). Objects in one video share colours or shapes and differ in motion,
so a model that ignores the frames or the word order cannot tell the candidates apart."""
from __future__ import annotations

import random
from dataclasses import replace

from .examples import Media, SynthExample, TaskDef, other_kind_answers, pick_distractors, text_candidates, unique
from .motion import EXTRA_MOTIONS, MOTIONS, MOVING, Video, place_mover, random_video, video_caption, video_variants
from .world import COLOUR_NAMES, NUMBER_WORDS, SHAPES, Desc

CLASSIFY = "<|video_1|>\nRepresent the given video for classification\n"
T2V = "Find a video that matches the given caption: {}\n"
VIDEO_TARGET = "<|video_1|>\nUnderstand the content of the provided video.\n"
VQA = "<|video_1|>\nGiven a video and a question, select the most accurate answer from the provided candidates: {}\n"
MOMENT = "<|video_1|>\nFind the clip that corresponds to the described scene in the given video: {}\n"
CLIP_TARGET = "<|video_1|>\nUnderstand the content of the provided video clip.\n"

N_CANDIDATES = 12
N_MOMENT = 10


def whole(video: Video, name: str | None = None) -> Media:
    return Media(video=video, frames=(0, video.num_frames), name=name)


def statement(desc: Desc, motion: str) -> str:
    return f"the {desc.words()} {motion}"


def build_motion(rng: random.Random) -> SynthExample | None:
    """What one object does; distractors: its other motions, and the other objects doing its motion."""
    video = random_video(rng, 2, 3)
    target = rng.choice(video.movers)
    truth = {(m.colour, m.shape, m.motions[0]) for m in video.movers}
    gold = statement(target.desc(), target.motions[0])
    swapped = [statement(m.desc(), target.motions[0]) for m in video.movers if m is not target]
    hard = swapped + [statement(target.desc(), m) for m in rng.sample(MOTIONS, len(MOTIONS)) if m != target.motions[0]]
    hard += [statement(m.desc(), x) for m in video.movers for x in MOTIONS if (m.colour, m.shape, x) not in truth]
    rng.shuffle(hard[len(swapped):])
    easy = [statement(Desc(rng.choice(COLOUR_NAMES), rng.choice(SHAPES)), rng.choice(MOTIONS)) for _ in range(30)]
    easy = [e for e in easy if not any(e == statement(Desc(c, s), m) for c, s, m in truth)]
    cands = text_candidates(gold, pick_distractors(unique(hard), easy, 30), N_CANDIDATES)
    return None if cands is None else SynthExample(CLASSIFY, whole(video), cands, {video.key()})


def build_video_qa(rng: random.Random) -> SynthExample | None:
    video = random_video(rng, 2, 3)
    kind = rng.choice(("how", "which", "count"))
    if kind == "how":
        mover = rng.choice(video.movers)
        question = f"How does the {mover.desc().words()} move?"
        gold = f"it {mover.motions[0]}"
        others = [f"it {m}" for m in MOTIONS + EXTRA_MOTIONS if m != mover.motions[0]]
        rng.shuffle(others)
    elif kind == "which":
        mover = rng.choice(video.movers)
        question = f"Which shape {mover.motions[0]}?"
        gold = f"the {mover.desc().words()}"
        others = [f"the {m.desc().words()}" for m in video.movers if m is not mover]
        for _ in range(40):
            changed = replace(mover.desc(), **rng.choice([{"colour": rng.choice(COLOUR_NAMES)}, {"shape": rng.choice(SHAPES)}]))
            others.append(f"the {changed.words()}")
    else:
        n = sum(m.motions[0] != "stays still" for m in video.movers)
        question = "How many shapes move or change size?"
        gold = NUMBER_WORDS[n]
        others = [w for w in NUMBER_WORDS if w != gold]
        rng.shuffle(others)
    phrases = [f"the {Desc(rng.choice(COLOUR_NAMES), rng.choice(SHAPES)).words()}" for _ in range(N_CANDIDATES)]
    easy = other_kind_answers(rng, kind, {"how": [f"it {m}" for m in MOTIONS + EXTRA_MOTIONS], "which": phrases,
                                          "count": NUMBER_WORDS})
    cands = text_candidates(gold, pick_distractors(unique(others), easy, N_CANDIDATES - 1), N_CANDIDATES)
    return None if cands is None else SynthExample(VQA.format(question), whole(video), cands, {video.key()})


def _subset_clash(a: Video, b: Video) -> bool:
    """True when a caption of one video is also true of the other (one's movers contain the other's)."""
    sa = {(m.colour, m.shape, m.motions) for m in a.movers}
    sb = {(m.colour, m.shape, m.motions) for m in b.movers}
    return sa <= sb or sb <= sa


def build_t2v_pool(rng: random.Random, count: int, forbidden: set, split: str) -> list[SynthExample]:
    """Caption -> video over a global pool made of families of near-duplicates (swapped motions etc.).

    Test: one candidate per row (its video); the pool is the union. Train: the gold and one family sibling."""
    pool: list[Video] = []
    families: list[list[int]] = []
    while len(pool) < count:
        base = random_video(rng, 2, 3)
        if base.key() in forbidden:
            continue
        family = [base] + video_variants(base, rng, rng.randint(2, 3), forbidden)
        family = [v for v in family if not any(_subset_clash(v, p) for p in pool)]
        kept: list[Video] = []
        for video in family:
            if not any(_subset_clash(video, k) for k in kept):
                kept.append(video)
        families.append(list(range(len(pool), len(pool) + len(kept))))
        pool.extend(kept)
    pool = pool[:count]
    examples = []
    for family in families:
        members = [k for k in family if k < len(pool)]
        for k in members:
            video = pool[k]
            cands = [(VIDEO_TARGET, whole(video, f"v{k:05d}"))]
            if split == "train":
                siblings = [j for j in members if j != k]
                if not siblings:
                    continue
                sibling = rng.choice(siblings)
                cands.append((VIDEO_TARGET, whole(pool[sibling], f"v{sibling:05d}")))
            examples.append(SynthExample(T2V.format(video_caption(video)), None, cands, {video.key()}))
    return examples


def build_moment_group(rng: random.Random, count: int, forbidden: set, split: str) -> list[SynthExample]:
    """Video + event -> the clip where it happens. Candidates: the three segments of this video and segments
    of sibling videos with the same objects (one sibling repeats the event elsewhere, from other positions)."""
    examples: list[SynthExample] = []
    index = 0
    while len(examples) < count:
        video = random_video(rng, 2, 3, segments=3, frames_per_segment=8)
        events = [next((m.desc(), m.motions[s]) for m in video.movers if m.motions[s] != "stays still") for s in range(3)]
        if len({(d.colour, d.shape, m) for d, m in events}) != 3 or video.key() in forbidden:
            continue
        vid = f"m{index:05d}"
        index += 1
        siblings = []
        for k in range(3):
            acts = [rng.choice(MOVING) for _ in range(3)]
            if k == 0:  # a sibling that repeats one of the events
                acts[rng.randrange(3)] = events[rng.randrange(3)][1]
            actors = [rng.randrange(len(video.movers)) for _ in range(3)]
            movers = tuple(place_mover(rng, m.shape, m.colour,
                                       tuple(acts[s] if actors[s] == i else "stays still" for s in range(3)), 8)
                           for i, m in enumerate(video.movers))
            siblings.append(replace(video, movers=movers, background=rng.randrange(4)))
        own = [Media(video=video, frames=(8 * s, 8 * s + 8), name=f"{vid}_c{s}") for s in range(3)]
        other = [Media(video=sib, frames=(8 * s, 8 * s + 8), name=f"{vid}_s{k}_c{s}")
                 for k, sib in enumerate(siblings) for s in range(3)]
        for s in range(3):
            desc, motion = events[s]
            distractors = [own[t] for t in range(3) if t != s] + rng.sample(other, N_MOMENT - 3)
            cands = [own[s]] + distractors if split == "test" else [own[s], distractors[0]]
            examples.append(SynthExample(MOMENT.format(f"the {desc.words()} {motion}"), whole(video, vid),
                                         [(CLIP_TARGET, c) for c in cands], {video.key()}))
    return examples[:count]


VIDEO_TASKS = (
    TaskDef("SynMotion", "video", "classification", build_motion, mirrors="SSv2 (local candidate labels)"),
    TaskDef("SynT2V", "video", "retrieval", None, ranking="global", mirrors="MSR-VTT / DiDeMo"),
    TaskDef("SynVideoQA", "video", "vqa", build_video_qa, mirrors="MVBench / NExT-QA"),
    TaskDef("SynMoment", "video", "moment_retrieval", None, mirrors="QVHighlights / Charades-STA"),
)
POOL_BUILDERS = {"SynT2V": build_t2v_pool, "SynMoment": build_moment_group}
