"""The still-image world: objects on a 3 x 3 grid, what can be said about them, and one-edit variants.

A scene is a few objects (shape, colour, size, grid cell, pixel jitter). What a text says about a scene is a
list of facts (exact counts of a kind of object, spatial relations between two kinds); `holds` decides
whether a text is true of a scene, so every distractor can be checked to be false before it is written.
Edits change exactly one thing (a colour, a shape, a size, a position, two objects swapped), which is how
the near-duplicate candidates are made.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable, Sequence

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
COLOURS = {
    "red": (220, 40, 40),
    "green": (30, 160, 60),
    "blue": (40, 80, 225),
    "yellow": (235, 200, 20),
    "purple": (140, 60, 180),
    "orange": (245, 130, 20),
    "black": (25, 25, 25),
    "cyan": (20, 190, 200),
}
COLOUR_NAMES = tuple(COLOURS)
SIZES = ("small", "large")
BACKGROUNDS = ((245, 245, 245), (236, 236, 224), (226, 236, 242), (242, 230, 236))
GRID = 3
# extra answer words that never occur in a scene (VQA answer lists of a fixed length)
EXTRA_COLOURS = ("pink", "brown", "gray", "white")
EXTRA_SHAPES = ("hexagon", "heart", "oval", "pentagon", "arrow", "ring")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven")
CELL_NAMES = {
    (0, 0): "top left", (1, 0): "top", (2, 0): "top right",
    (0, 1): "left", (1, 1): "centre", (2, 1): "right",
    (0, 2): "bottom left", (1, 2): "bottom", (2, 2): "bottom right",
}


def with_article(words: str) -> str:
    """'a red circle', 'an orange star'."""
    return ("an " if words[:1] in ("a", "e", "i", "o", "u") else "a ") + words


def plural(shape: str) -> str:
    return shape + ("es" if shape.endswith(("s", "x", "sh", "ch")) else "s")


@dataclass(frozen=True)
class Obj:
    """One drawn object: what it is (shape, colour, size), where (grid cell) and a small pixel jitter."""

    shape: str
    colour: str
    size: str
    col: int
    row: int
    dx: int = 0
    dy: int = 0

    def semantic(self) -> tuple:
        return (self.shape, self.colour, self.size, self.col, self.row)

    def kind(self) -> tuple[str, str, str]:
        return (self.size, self.colour, self.shape)


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]
    background: int = 0

    def key(self) -> tuple:
        """What the scene shows, ignoring jitter and background (two scenes with one key look alike)."""
        return tuple(sorted(o.semantic() for o in self.objects))

    def free_cells(self) -> list[tuple[int, int]]:
        taken = {(o.col, o.row) for o in self.objects}
        return [(c, r) for r in range(GRID) for c in range(GRID) if (c, r) not in taken]

    def with_object(self, index: int, obj: Obj) -> "Scene":
        objects = list(self.objects)
        objects[index] = obj
        return replace(self, objects=tuple(objects))


@dataclass(frozen=True)
class Desc:
    """A description of a kind of object; None fields match anything."""

    colour: str | None = None
    shape: str | None = None
    size: str | None = None

    def matches(self, obj: Obj) -> bool:
        return ((self.colour is None or obj.colour == self.colour)
                and (self.shape is None or obj.shape == self.shape)
                and (self.size is None or obj.size == self.size))

    def words(self) -> str:
        parts = [p for p in (self.size, self.colour) if p]
        return " ".join(parts + [self.shape or "shape"])

    def plural_words(self) -> str:
        parts = [p for p in (self.size, self.colour) if p]
        return " ".join(parts + [plural(self.shape) if self.shape else "shapes"])


def describe(obj: Obj, with_size: bool = True) -> Desc:
    return Desc(obj.colour, obj.shape, obj.size if with_size else None)


@dataclass(frozen=True)
class Count:
    """Exactly `n` objects match `desc`."""

    desc: Desc
    n: int


@dataclass(frozen=True)
class Rel:
    """Some object matching `a` is `relation` ("left of", "right of", "above", "below") some other matching `b`."""

    a: Desc
    relation: str
    b: Desc


Fact = Count | Rel
RELATIONS = ("left of", "right of", "above", "below")


def related(x: Obj, relation: str, y: Obj) -> bool:
    if relation == "left of":
        return x.col < y.col
    if relation == "right of":
        return x.col > y.col
    if relation == "above":
        return x.row < y.row
    if relation == "below":
        return x.row > y.row
    raise ValueError(f"unknown relation {relation!r}")


def holds(facts: Sequence[Fact], scene: Scene) -> bool:
    """True when every fact is true of the scene."""
    for fact in facts:
        if isinstance(fact, Count):
            if sum(fact.desc.matches(o) for o in scene.objects) != fact.n:
                return False
        else:
            if not any(fact.a.matches(x) and fact.b.matches(y) and related(x, fact.relation, y)
                       for x in scene.objects for y in scene.objects if x is not y):
                return False
    return True


# ---------------------------------------------------------------- sampling

def random_object(rng: random.Random, cell: tuple[int, int], jitter: int = 3) -> Obj:
    return Obj(rng.choice(SHAPES), rng.choice(COLOUR_NAMES), rng.choice(SIZES), cell[0], cell[1],
               rng.randint(-jitter, jitter), rng.randint(-jitter, jitter))


def random_scene(rng: random.Random, n_min: int = 3, n_max: int = 5, twin_prob: float = 0.25) -> Scene:
    """A scene of `n_min`..`n_max` objects in distinct cells; sometimes two share colour and shape."""
    n = rng.randint(n_min, n_max)
    cells = rng.sample([(c, r) for r in range(GRID) for c in range(GRID)], n)
    objects = [random_object(rng, cell) for cell in cells]
    if n >= 3 and rng.random() < twin_prob:
        src = objects[0]
        k = rng.randrange(1, n)
        objects[k] = replace(objects[k], shape=src.shape, colour=src.colour)
    return Scene(tuple(objects), rng.randrange(len(BACKGROUNDS)))


def rejitter(scene: Scene, rng: random.Random, jitter: int = 3) -> Scene:
    """The same scene drawn again: new pixel offsets and background, same content."""
    objects = tuple(replace(o, dx=rng.randint(-jitter, jitter), dy=rng.randint(-jitter, jitter)) for o in scene.objects)
    return Scene(objects, rng.randrange(len(BACKGROUNDS)))


# ---------------------------------------------------------------- captions

@dataclass(frozen=True)
class CaptionPlan:
    """How a caption is built from a scene, kept fixed so that edited scenes get parallel captions."""

    pair: tuple[int, int]
    horizontal_word: str  # "left of" or "right of": the word used for horizontal relations
    vertical_word: str  # "above" or "below"


def caption_facts(scene: Scene, plan: CaptionPlan) -> list[Fact]:
    """Counts of every kind of object (in order of first appearance) and one relation between the pair."""
    groups: dict[tuple, int] = {}
    for obj in scene.objects:
        groups[obj.kind()] = groups.get(obj.kind(), 0) + 1
    facts: list[Fact] = [Count(Desc(colour, shape, size), n) for (size, colour, shape), n in groups.items()]
    i, j = plan.pair
    x, y = scene.objects[i], scene.objects[j]
    if x.col != y.col:
        word = plan.horizontal_word
    else:
        word = plan.vertical_word
    first, second = (x, y) if related(x, word, y) else (y, x)
    facts.append(Rel(describe(first, False), word, describe(second, False)))
    return facts


def random_plan(scene: Scene, rng: random.Random) -> CaptionPlan:
    i, j = rng.sample(range(len(scene.objects)), 2)
    return CaptionPlan((i, j), rng.choice(("left of", "right of")), rng.choice(("above", "below")))


# ---------------------------------------------------------------- edits

@dataclass(frozen=True)
class Edit:
    """A one-change edit of a scene with the instruction that asks for it."""

    scene: Scene
    instruction: str
    kind: str


def _ref(scene: Scene, index: int) -> str | None:
    """The shortest phrase naming object `index` alone in the scene, or None if it has a twin."""
    obj = scene.objects[index]
    for desc in (describe(obj, False), describe(obj, True)):
        if sum(desc.matches(o) for o in scene.objects) == 1:
            return "the " + desc.words()
    return None


def edit_recolour(scene: Scene, rng: random.Random, index: int) -> Edit | None:
    obj = scene.objects[index]
    new = rng.choice([c for c in COLOUR_NAMES if c != obj.colour])
    ref = _ref(scene, index)
    return None if ref is None else Edit(scene.with_object(index, replace(obj, colour=new)), f"make {ref} {new}", "colour")


def edit_reshape(scene: Scene, rng: random.Random, index: int) -> Edit | None:
    obj = scene.objects[index]
    new = rng.choice([s for s in SHAPES if s != obj.shape])
    ref = _ref(scene, index)
    return None if ref is None else Edit(scene.with_object(index, replace(obj, shape=new)), f"turn {ref} into a {new}", "shape")


def edit_resize(scene: Scene, rng: random.Random, index: int) -> Edit | None:
    obj = scene.objects[index]
    new = "large" if obj.size == "small" else "small"
    ref = _ref(scene, index)
    return None if ref is None else Edit(scene.with_object(index, replace(obj, size=new)), f"make {ref} {new}", "size")


def edit_move(scene: Scene, rng: random.Random, index: int) -> Edit | None:
    free = scene.free_cells()
    ref = _ref(scene, index)
    if not free or ref is None:
        return None
    col, row = rng.choice(free)
    obj = scene.objects[index]
    return Edit(scene.with_object(index, replace(obj, col=col, row=row)),
                f"move {ref} to the {CELL_NAMES[(col, row)]}", "move")


def _swap_with_partner(scene: Scene, rng: random.Random, index: int, eligible, swap, describe, kind: str) -> Edit | None:
    """Swap an attribute between object `index` and a random eligible partner, named by unambiguous references."""
    others = [k for k in range(len(scene.objects)) if eligible(scene.objects[index], scene.objects[k], k)]
    if not others:
        return None
    k = rng.choice(others)
    ref_a, ref_b = _ref(scene, index), _ref(scene, k)
    if ref_a is None or ref_b is None:
        return None
    new_a, new_b = swap(scene.objects[index], scene.objects[k])
    return Edit(scene.with_object(index, new_a).with_object(k, new_b), describe(ref_a, ref_b), kind)


def edit_swap_positions(scene: Scene, rng: random.Random, index: int) -> Edit | None:
    return _swap_with_partner(
        scene, rng, index,
        eligible=lambda a, b, k: k != index and b.kind() != a.kind(),
        swap=lambda a, b: (replace(a, col=b.col, row=b.row), replace(b, col=a.col, row=a.row)),
        describe=lambda ref_a, ref_b: f"swap {ref_a} and {ref_b}", kind="swap_positions")


def edit_swap_colours(scene: Scene, rng: random.Random, index: int) -> Edit | None:
    return _swap_with_partner(
        scene, rng, index,
        eligible=lambda a, b, k: b.colour != a.colour,
        swap=lambda a, b: (replace(a, colour=b.colour), replace(b, colour=a.colour)),
        describe=lambda ref_a, ref_b: f"swap the colours of {ref_a} and {ref_b}", kind="swap_colours")


def edit_add(scene: Scene, rng: random.Random, index: int) -> Edit | None:
    free = scene.free_cells()
    if not free:
        return None
    obj = random_object(rng, rng.choice(free))
    place = CELL_NAMES[(obj.col, obj.row)]
    return Edit(replace(scene, objects=scene.objects + (obj,)),
                f"add {with_article(describe(obj).words())} at the {place}", "add")


def edit_remove(scene: Scene, rng: random.Random, index: int) -> Edit | None:
    ref = _ref(scene, index)
    if ref is None or len(scene.objects) <= 2:
        return None
    objects = scene.objects[:index] + scene.objects[index + 1:]
    return Edit(replace(scene, objects=objects), f"remove {ref}", "remove")


# edits that keep object indices stable (captions stay parallel); add/remove change the count
INDEX_EDITS: tuple[Callable, ...] = (edit_recolour, edit_reshape, edit_resize, edit_move, edit_swap_positions, edit_swap_colours)
ALL_EDITS: tuple[Callable, ...] = INDEX_EDITS + (edit_add, edit_remove)


def one_edit_variants(scene: Scene, rng: random.Random, wanted: int, accept: Callable[[Scene], bool],
                      edits: Sequence[Callable] = ALL_EDITS, tries: int = 200) -> list[Edit]:
    """Up to `wanted` edits of `scene` with distinct keys that `accept` admits (e.g. the gold text is false)."""
    seen = {scene.key()}
    found: list[Edit] = []
    for _ in range(tries):
        if len(found) >= wanted:
            break
        edit_fn = rng.choice(list(edits))
        edit = edit_fn(scene, rng, rng.randrange(len(scene.objects)))
        if edit is None or edit.scene.key() in seen or not accept(edit.scene):
            continue
        seen.add(edit.scene.key())
        found.append(edit)
    return found
