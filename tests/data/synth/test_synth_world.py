"""The synthetic world's semantics: facts, captions and near-duplicates that must be wrong for the query."""
from __future__ import annotations

import random

from uniembed.data.synth.language import caption_text, normal_relation
from uniembed.data.synth.motion import video_caption, video_variants, random_video
from uniembed.data.synth.tasks_text import build_paraphrase
from uniembed.data.synth.world import (
    Count, Desc, Obj, Rel, Scene, caption_facts, edit_swap_positions, holds, one_edit_variants, random_plan, random_scene,
)

RED_CIRCLE = Obj("circle", "red", "large", 0, 1)
BLUE_SQUARE = Obj("square", "blue", "small", 2, 1)
SCENE = Scene((RED_CIRCLE, BLUE_SQUARE))


def test_holds_counts_exactly_and_reads_relations():
    assert holds([Count(Desc("red", "circle"), 1), Rel(Desc("red", "circle"), "left of", Desc("blue", "square"))], SCENE)
    assert not holds([Rel(Desc("blue", "square"), "left of", Desc("red", "circle"))], SCENE)  # same words, swapped
    assert holds([Rel(Desc("blue", "square"), "right of", Desc("red", "circle"))], SCENE)
    assert not holds([Count(Desc("red", "circle", "small"), 1)], SCENE)
    assert not holds([Count(Desc(shape="circle"), 2)], SCENE)
    assert holds([Count(Desc(colour="green"), 0)], SCENE)


def test_swapping_positions_keeps_the_words_and_breaks_the_caption():
    facts = [Count(Desc("red", "circle", "large"), 1), Count(Desc("blue", "square", "small"), 1),
             Rel(Desc("red", "circle"), "left of", Desc("blue", "square"))]
    assert caption_text(facts) == "a large red circle and a small blue square. the red circle is left of the blue square."
    swapped = edit_swap_positions(SCENE, random.Random(0), 0)
    assert swapped.instruction == "swap the red circle and the blue square"
    assert not holds(facts, swapped.scene)
    swapped_text = caption_text(caption_facts(swapped.scene, _plan()))
    assert swapped_text == "a large red circle and a small blue square. the blue square is left of the red circle."
    assert sorted(caption_text(facts).replace(".", "").split()) == sorted(swapped_text.replace(".", "").split())


def _plan():
    from uniembed.data.synth.world import CaptionPlan
    return CaptionPlan((0, 1), "left of", "above")


def test_captions_hold_for_their_scene_and_fail_for_accepted_variants():
    rng = random.Random(5)
    for _ in range(50):
        scene = random_scene(rng)
        facts = caption_facts(scene, random_plan(scene, rng))
        assert holds(facts, scene)
        variants = one_edit_variants(scene, rng, 8, lambda s: not holds(facts, s))
        assert variants and all(not holds(facts, v.scene) for v in variants)
        assert len({v.scene.key() for v in variants} | {scene.key()}) == len(variants) + 1


def test_video_variants_differ_and_swaps_keep_the_words():
    rng = random.Random(2)
    for _ in range(30):
        video = random_video(rng, 2, 3)
        variants = video_variants(video, rng, 3, set())
        assert all(v.key() != video.key() for v in variants)
        assert len({v.key() for v in variants}) == len(variants)
        assert all(video_caption(v) != video_caption(video) for v in variants)


def test_paraphrase_candidates_have_one_true_meaning():
    rng = random.Random(3)
    for _ in range(30):
        example = build_paraphrase(rng)
        if example is None:
            continue
        texts = [t for t, _ in example.candidates]
        assert len(set(texts)) == len(texts) and example.query_text.split(": ", 1)[1].strip() not in texts
    a, b = Desc("red", "circle"), Desc("blue", "square")
    assert normal_relation(a, "left of", b) == normal_relation(b, "right of", a)
    assert normal_relation(a, "left of", b) != normal_relation(b, "left of", a)
