"""Image tasks, one builder per MMEB-V1 counterpart; every distractor is checked to be wrong for the query."""
from __future__ import annotations

import math
import random
from dataclasses import replace

from .examples import Media, SynthExample, TaskDef, other_kind_answers, pick_distractors, text_candidates, unique
from .language import caption_text
from .render import Label, Picture, Sprite, crop_picture, scene_picture
from .world import (
    ALL_EDITS, CELL_NAMES, COLOUR_NAMES, EXTRA_COLOURS, EXTRA_SHAPES, GRID, INDEX_EDITS, NUMBER_WORDS, RELATIONS, SHAPES, SIZES,
    Desc, Obj, Scene, caption_facts, describe, edit_add, holds, one_edit_variants, plural, random_object, random_plan,
    random_scene, related, rejitter, with_article,
)

CLASSIFY = "<|image_1|>\nRepresent the given image for classification\n"
VQA = "<|image_1|>\nRepresent the given image with the following question: {}\n"
T2I = "Find an image that matches the given caption: {}\n"
I2T = "<|image_1|>\nFind an image caption describing the given image.\n"
CIR = "<|image_1|>\nGiven an image, find a similar image with the following modification: {}\n"
I2I = "<|image_1|>\nFind an image that shows the same scene as the given image.\n"
GROUND = "<|image_1|>\nSelect the portion of the image that isolates the object described as: {}\n"
IMAGE_TARGET = "<|image_1|>\nRepresent the given image.\n"
CROP_TARGET = "<|image_1|>\nRepresent the given cropped image of the object.\n"

N_CANDIDATES = 12


def pic(scene: Scene) -> Media:
    return Media(picture=scene_picture(scene))


# ---------------------------------------------------------------- classification

def count_label(n: int, colour: str, shape: str) -> str:
    return f"{NUMBER_WORDS[n]} {colour} {plural(shape) if n != 1 else shape}"


def build_count(rng: random.Random) -> SynthExample | None:
    """How many of one kind: clutter shares colour or shape with the counted kind."""
    n, clutter = rng.randint(1, 4), rng.randint(1, 3)
    colour, shape = rng.choice(COLOUR_NAMES), rng.choice(SHAPES)
    cells = rng.sample([(c, r) for r in range(GRID) for c in range(GRID)], n + clutter)
    objects = [replace(random_object(rng, cell), colour=colour, shape=shape) for cell in cells[:n]]
    for cell in cells[n:]:
        obj = random_object(rng, cell)
        if rng.random() < 0.6:
            obj = replace(obj, colour=colour) if rng.random() < 0.5 else replace(obj, shape=shape)
        if (obj.colour, obj.shape) == (colour, shape):
            obj = replace(obj, shape=rng.choice([s for s in SHAPES if s != shape]))
        objects.append(obj)
    scene = Scene(tuple(rng.sample(objects, len(objects))), rng.randrange(4))

    def true(m: int, c: str, s: str) -> bool:
        return sum(o.colour == c and o.shape == s for o in scene.objects) == m

    hard = [(m, colour, shape) for m in range(1, 7) if m != n]
    hard += [(n, c, shape) for c in COLOUR_NAMES if c != colour] + [(n, colour, s) for s in SHAPES if s != shape]
    hard += [(m, o.colour, o.shape) for o in scene.objects for m in range(1, 5)]
    rng.shuffle(hard)
    hard = [h for h in hard if not true(*h)]
    easy = [(rng.randint(1, 6), rng.choice(COLOUR_NAMES), rng.choice(SHAPES)) for _ in range(20)]
    easy = [e for e in easy if not true(*e)]
    labels = [count_label(*x) for x in pick_distractors(unique(hard), easy, 40)]
    cands = text_candidates(count_label(n, colour, shape), labels, N_CANDIDATES)
    return None if cands is None else SynthExample(CLASSIFY, pic(scene), cands, {scene.key()})


LAYOUTS = (
    "a row of shapes", "a column of shapes", "a diagonal line from top left to bottom right",
    "a diagonal line from bottom left to top right", "shapes in the four corners", "a ring of shapes",
    "a plus sign made of shapes", "three shapes forming a triangle", "a two by two block of shapes",
    "a single shape in the centre", "two shapes side by side", "a scattered group of shapes",
)


def layout_points(rng: random.Random, layout: str) -> list[tuple[float, float]]:
    s = 96
    if layout == LAYOUTS[0]:
        y, k = rng.uniform(20, 76), rng.randint(4, 5)
        return [(14 + i * (68 / (k - 1)), y) for i in range(k)]
    if layout == LAYOUTS[1]:
        x, k = rng.uniform(20, 76), rng.randint(4, 5)
        return [(x, 14 + i * (68 / (k - 1))) for i in range(k)]
    if layout == LAYOUTS[2]:
        return [(14 + i * 17, 14 + i * 17) for i in range(5)]
    if layout == LAYOUTS[3]:
        return [(14 + i * 17, s - 14 - i * 17) for i in range(5)]
    if layout == LAYOUTS[4]:
        return [(14, 14), (s - 14, 14), (14, s - 14), (s - 14, s - 14)]
    if layout == LAYOUTS[5]:
        k, start = rng.randint(6, 7), rng.uniform(0, math.pi)
        return [(48 + 32 * math.cos(start + 2 * math.pi * i / k), 48 + 32 * math.sin(start + 2 * math.pi * i / k)) for i in range(k)]
    if layout == LAYOUTS[6]:
        return [(48, 48), (48, 18), (48, 78), (18, 48), (78, 48)]
    if layout == LAYOUTS[7]:
        return [(48, 18), (20, 74), (76, 74)]
    if layout == LAYOUTS[8]:
        cx, cy = rng.uniform(32, 64), rng.uniform(32, 64)
        return [(cx - 11, cy - 11), (cx + 11, cy - 11), (cx - 11, cy + 11), (cx + 11, cy + 11)]
    if layout == LAYOUTS[9]:
        return [(48, 48)]
    if layout == LAYOUTS[10]:
        y = rng.uniform(25, 71)
        return [(30, y), (66, y)]
    points: list[tuple[float, float]] = []  # scattered: no three in a line, no grid
    while len(points) < rng.randint(5, 6):
        p = (rng.uniform(12, 84), rng.uniform(12, 84))
        if all(abs(p[0] - q[0]) > 9 and abs(p[1] - q[1]) > 9 for q in points):
            points.append(p)
    return points


def build_layout(rng: random.Random) -> SynthExample:
    """Scene class (ImageNet-like fixed label set): the arrangement, whatever the shapes and colours."""
    layout = rng.choice(LAYOUTS)
    sprites = tuple(Sprite(rng.choice(SHAPES), rng.choice(COLOUR_NAMES), x + rng.uniform(-2, 2), y + rng.uniform(-2, 2),
                           rng.choice((6.0, 7.0, 8.0))) for x, y in layout_points(rng, layout))
    picture = Picture(sprites, rng.randrange(4))
    others = [name for name in LAYOUTS if name != layout]
    rng.shuffle(others)
    return SynthExample(CLASSIFY, Media(picture=picture), [(name, None) for name in [layout] + others], {picture})


CONSONANTS, VOWELS = "bdfgklmnprstvz", "aeiou"


def random_word(rng: random.Random) -> str:
    pattern = rng.choice(("cvcv", "cvcvc", "cvccv"))
    return "".join(rng.choice(CONSONANTS if p == "c" else VOWELS) for p in pattern)


def one_letter_variants(rng: random.Random, word: str, wanted: int) -> list[str]:
    options = []
    for i, ch in enumerate(word):
        pool = VOWELS if ch in VOWELS else CONSONANTS
        options += [word[:i] + other + word[i + 1:] for other in pool if other != ch]
    rng.shuffle(options)
    return options[:wanted]


def build_sign(rng: random.Random) -> SynthExample | None:
    """Read rendered text: candidates are pseudo-words one letter away from the sign's word."""
    word = random_word(rng)
    scene = random_scene(rng, 2, 3)
    label = Label(rng.randint(6, 40), rng.randint(8, 70), word, 16)
    picture = scene_picture(scene, (label,))
    easy = [random_word(rng) for _ in range(N_CANDIDATES)]
    distractors = pick_distractors(one_letter_variants(rng, word, 30), easy, 30)
    cands = text_candidates(word, distractors, N_CANDIDATES)
    return None if cands is None else SynthExample(CLASSIFY, Media(picture=picture), cands, {("word", word)})


# ---------------------------------------------------------------- VQA

def _unique_desc(scene: Scene, obj: Obj) -> Desc | None:
    for desc in (Desc(obj.colour, obj.shape), describe(obj)):
        if sum(desc.matches(o) for o in scene.objects) == 1:
            return desc
    return None


def _object_answers(rng: random.Random, scene: Scene, gold: Obj, wrong: list[Obj]) -> list[str]:
    """Descriptions of other objects in the scene, then one-attribute changes of the gold object."""
    answers = [with_article(describe(o).words()) for o in wrong]
    for _ in range(40):
        changed = replace(gold, **rng.choice([{"colour": rng.choice(COLOUR_NAMES)}, {"shape": rng.choice(SHAPES)},
                                              {"size": rng.choice(SIZES)}]))
        answers.append(with_article(describe(changed).words()))
    return answers


def build_vqa(rng: random.Random) -> SynthExample | None:
    scene = random_scene(rng, 3, 5)
    kind = rng.choice(("colour", "shape", "count", "relation", "relation"))
    objects = list(scene.objects)
    if kind == "colour":
        options = [o for o in objects if sum(x.shape == o.shape for x in objects) == 1]
        if not options:
            return None
        obj = rng.choice(options)
        question, gold = f"What colour is the {obj.shape}?", obj.colour
        others = [c for c in COLOUR_NAMES + EXTRA_COLOURS if c != gold]
    elif kind == "shape":
        options = [o for o in objects if sum(x.colour == o.colour for x in objects) == 1]
        if not options:
            return None
        obj = rng.choice(options)
        question, gold = f"What shape is the {obj.colour} object?", obj.shape
        others = [s for s in SHAPES + EXTRA_SHAPES if s != gold]
    elif kind == "count":
        obj = rng.choice(objects)
        desc = rng.choice((Desc(colour=obj.colour), Desc(shape=obj.shape), Desc(size=obj.size), Desc()))
        n = sum(desc.matches(o) for o in objects)
        question, gold = f"How many {desc.plural_words()} are there?", NUMBER_WORDS[n]
        others = [w for w in NUMBER_WORDS if w != gold]
    else:
        for _ in range(20):
            ref = rng.choice(objects)
            relation = rng.choice(RELATIONS)
            ref_desc = _unique_desc(scene, ref)
            hits = [o for o in objects if o is not ref and related(o, relation, ref)]
            if ref_desc is not None and len(hits) == 1:
                break
        else:
            return None
        question = f"What is {relation} the {ref_desc.words()}?"
        gold = with_article(describe(hits[0]).words())
        wrong = [o for o in objects if o is not hits[0] and o is not ref]
        others = unique(a for a in _object_answers(rng, scene, hits[0], wrong + [ref]) if a != gold)
    if kind != "relation":
        rng.shuffle(others)
    phrases = [with_article(describe(random_object(rng, (0, 0))).words()) for _ in range(N_CANDIDATES)]
    easy = other_kind_answers(rng, kind, {"colour": COLOUR_NAMES + EXTRA_COLOURS, "shape": SHAPES + EXTRA_SHAPES,
                                          "count": NUMBER_WORDS, "relation": phrases})
    cands = text_candidates(gold, pick_distractors(others, easy, N_CANDIDATES - 1), N_CANDIDATES)
    return None if cands is None else SynthExample(VQA.format(question), pic(scene), cands, {scene.key()})


# ---------------------------------------------------------------- retrieval

def _random_scenes(rng: random.Random, count: int, reject) -> list[Scene]:
    scenes = [random_scene(rng, 3, 5) for _ in range(count * 2)]
    return [s for s in scenes if not reject(s)][:count]


def build_t2i(rng: random.Random) -> SynthExample | None:
    """Caption -> image; distractors are the scene with one thing changed, so the caption is false for them."""
    scene = random_scene(rng, 3, 5)
    facts = caption_facts(scene, random_plan(scene, rng))
    false = lambda s: not holds(facts, s)  # noqa: E731
    hard = [e.scene for e in one_edit_variants(scene, rng, N_CANDIDATES, false)]
    easy = _random_scenes(rng, N_CANDIDATES, lambda s: not false(s))
    scenes = unique([scene] + pick_distractors(hard, easy, N_CANDIDATES - 1), key=Scene.key)
    if len(scenes) != N_CANDIDATES:
        return None
    return SynthExample(T2I.format(caption_text(facts)), None, [(IMAGE_TARGET, pic(s)) for s in scenes],
                        {s.key() for s in scenes})


def build_i2t(rng: random.Random) -> SynthExample | None:
    """Image -> caption; distractor captions describe one-edit scenes with the same plan (same words, swapped)."""
    scene = random_scene(rng, 3, 5)
    plan = random_plan(scene, rng)
    gold = caption_text(caption_facts(scene, plan))
    false = lambda s: not holds(caption_facts(s, plan), scene)  # noqa: E731
    hard = [caption_text(caption_facts(e.scene, plan))
            for e in one_edit_variants(scene, rng, 2 * N_CANDIDATES, false, edits=INDEX_EDITS + (edit_add,))]
    easy = [caption_text(caption_facts(s, random_plan(s, rng))) for s in _random_scenes(rng, N_CANDIDATES, lambda s: False)]
    hard, easy = unique(h for h in hard if h != gold), [e for e in easy if e != gold]
    cands = text_candidates(gold, pick_distractors(hard, easy, N_CANDIDATES - 1), N_CANDIDATES)
    return None if cands is None else SynthExample(I2T, pic(scene), cands, {scene.key()})


def build_cir(rng: random.Random) -> SynthExample | None:
    """Reference image + edit text -> edited image; distractors: the unedited image and other edits of it."""
    ref = random_scene(rng, 3, 4)
    edits = one_edit_variants(ref, rng, N_CANDIDATES, lambda s: True, edits=ALL_EDITS)
    if len(edits) < N_CANDIDATES - 3:
        return None
    gold, hard = edits[0], [ref] + [e.scene for e in edits[1:]]
    easy = _random_scenes(rng, N_CANDIDATES, lambda s: False)
    scenes = unique([gold.scene] + pick_distractors(hard, easy, N_CANDIDATES - 1), key=Scene.key)
    if len(scenes) != N_CANDIDATES:
        return None
    return SynthExample(CIR.format(gold.instruction), pic(ref), [(IMAGE_TARGET, pic(s)) for s in scenes],
                        {s.key() for s in scenes} | {ref.key()})


def build_i2i(rng: random.Random) -> SynthExample | None:
    """Image -> the same scene drawn again (new jitter, background); distractors: one-edit scenes, redrawn."""
    scene = random_scene(rng, 3, 5)
    hard = [e.scene for e in one_edit_variants(scene, rng, N_CANDIDATES, lambda s: True)]
    easy = _random_scenes(rng, N_CANDIDATES, lambda s: False)
    scenes = unique([scene] + pick_distractors(hard, easy, N_CANDIDATES - 1), key=Scene.key)
    if len(scenes) != N_CANDIDATES:
        return None
    return SynthExample(I2I, pic(scene), [(IMAGE_TARGET, pic(rejitter(s, rng))) for s in scenes],
                        {s.key() for s in scenes})


# ---------------------------------------------------------------- grounding

N_GROUND = 10
# How the expression names the target. RefCOCO's expressions mostly give the object's own attributes or its
# place in the image ("small red circle", "red circle at the top left"); a relation to another object ("left
# of the blue square") is the rarer, harder form. The candidates are the same whatever the form: every other
# object of the scene, the twin, and the target's place redrawn with one attribute changed.
EXPRESSION_FORMS = ("attributes", "place", "relation")


def build_grounding(rng: random.Random) -> SynthExample | None:
    """Image + referring expression -> crop; often a twin (same colour and shape, other size) must be ruled out
    by the size, the place or the relation the expression gives."""
    scene = random_scene(rng, 3, 5, twin_prob=0.0)
    objects = list(scene.objects)
    target = objects[0]
    refs = [k for k, o in enumerate(objects) if k and (o.colour, o.shape) != (target.colour, target.shape)
            and sum(Desc(o.colour, o.shape).matches(x) for x in objects) == 1]
    if not refs:
        return None
    ref_index = rng.choice(refs)
    ref = objects[ref_index]
    twin = None
    free = scene.free_cells()
    if free and rng.random() < 0.6:
        col, row = rng.choice(free)
        twin = Obj(target.shape, target.colour, "small" if target.size == "large" else "large", col, row,
                   rng.randint(-3, 3), rng.randint(-3, 3))
    form = rng.choice(EXPRESSION_FORMS)
    if form == "relation":
        relations = [r for r in RELATIONS if related(target, r, ref) and (twin is None or not related(twin, r, ref))]
        if not relations:
            twin = None
            relations = [r for r in RELATIONS if related(target, r, ref)]
        expression = f"the {target.colour} {target.shape} {rng.choice(relations)} the {ref.colour} {ref.shape}"
    elif form == "place":
        expression = f"the {target.colour} {target.shape} at the {CELL_NAMES[(target.col, target.row)]}"
    else:
        expression = f"the {target.size} {target.colour} {target.shape}"
    if twin is not None:
        scene = Scene(scene.objects + (twin,), scene.background)
    # the training split keeps the first hard negative: the object a model that reads the expression as a bag
    # of words confuses with the target (the referent of a relation, else the twin), then the scene's others
    twin_index = [len(scene.objects) - 1] if twin is not None else []
    order = [ref_index] + twin_index if form == "relation" else twin_index
    order += [k for k in range(1, len(scene.objects)) if k not in order]
    hard = [(scene.objects[k].kind(), crop_picture(scene, k)) for k in order]
    for _ in range(30):  # the same place in a changed scene: target recoloured / reshaped / resized
        changed = replace(target, **rng.choice([{"colour": rng.choice(COLOUR_NAMES)}, {"shape": rng.choice(SHAPES)},
                                                {"size": rng.choice(SIZES)}]))
        hard.append((changed.kind(), crop_picture(scene.with_object(0, changed), 0)))
    hard = unique([c for c in hard if c[0] != target.kind()], key=lambda c: c[0])
    # easy: an object of another scene, of another kind than the target
    easy = [(s.objects[0].kind(), crop_picture(s, 0))
            for s in _random_scenes(rng, N_GROUND, lambda s: s.objects[0].kind() == target.kind())]
    crops = unique([(target.kind(), crop_picture(scene, 0))] + pick_distractors(hard, easy, N_GROUND - 1),
                   key=lambda c: c[0])
    if len(crops) != N_GROUND:
        return None
    return SynthExample(GROUND.format(expression), pic(scene), [(CROP_TARGET, Media(picture=p)) for _, p in crops],
                        {scene.key()})


IMAGE_TASKS = (
    TaskDef("SynCount", "image", "classification", build_count, mirrors="counting classification (fine-grained labels)"),
    TaskDef("SynLayout", "image", "classification", build_layout, mirrors="ImageNet-1K / SUN397 (fixed label set)"),
    TaskDef("SynSign", "image", "classification", build_sign, mirrors="N24News / text in images"),
    TaskDef("SynVQA", "image", "vqa", build_vqa, mirrors="Visual7W / GQA"),
    TaskDef("SynT2I", "image", "retrieval", build_t2i, mirrors="MSCOCO_t2i"),
    TaskDef("SynI2T", "image", "retrieval", build_i2t, mirrors="MSCOCO_i2t"),
    TaskDef("SynCIR", "image", "retrieval", build_cir, mirrors="CIRR"),
    TaskDef("SynI2I", "image", "retrieval", build_i2i, in_distribution=False, mirrors="NIGHTS"),
    TaskDef("SynGround", "image", "grounding", build_grounding, mirrors="RefCOCO / MSCOCO grounding"),
)
