"""Text-to-text pairs for text-only stages: find the sentence that means the same.

Relation sentences have one paraphrase among candidates that reuse the same words with the arguments
swapped or a word changed ("the red circle is left of the blue square" vs "the blue square is left of the
red circle"), so a bag-of-words model cannot find it; count sentences work the same way with numbers. The
rest of the list (examples.EASY_SHARE) are sentences with an unrelated meaning.
"""
from __future__ import annotations

import random
from dataclasses import replace

from .examples import SynthExample, TaskDef, pick_distractors, unique
from .language import CONVERSE, RELATION_TEMPLATES, normal_relation, relation_variant
from .world import COLOUR_NAMES, NUMBER_WORDS, RELATIONS, SHAPES, Desc

PARAPHRASE = "Find a sentence that means the same as the given sentence: {}\n"
TEXT_INSTRUCTION = "Find a sentence that means the same as the given sentence"
N_CANDIDATES = 10

COUNT_TEMPLATES = (
    "there are {n} {p}",
    "the picture holds exactly {n} {p}",
    "{n_cap} {p} can be seen",
    "exactly {n} {p} are shown",
)


def count_sentence(n: int, desc: Desc, template: int) -> str:
    word = NUMBER_WORDS[n]
    return COUNT_TEMPLATES[template].format(n=word, p=desc.plural_words(), n_cap=word.capitalize())


def _changed(rng: random.Random, desc: Desc) -> Desc:
    if rng.random() < 0.5:
        return replace(desc, colour=rng.choice([c for c in COLOUR_NAMES if c != desc.colour]))
    return replace(desc, shape=rng.choice([s for s in SHAPES if s != desc.shape]))


def build_relation_pair(rng: random.Random) -> tuple[str, str, list[str], tuple]:
    a = Desc(rng.choice(COLOUR_NAMES), rng.choice(SHAPES))
    b = Desc(rng.choice([c for c in COLOUR_NAMES if c != a.colour]), rng.choice(SHAPES))
    relation = rng.choice(RELATIONS)
    q_t, g_t = rng.sample(range(len(RELATION_TEMPLATES)), 2)
    query, gold = relation_variant(a, relation, b, q_t), relation_variant(a, relation, b, g_t)
    meaning = normal_relation(a, relation, b)
    wrong = []
    for _ in range(60):
        kind = rng.choice(("swap", "converse", "perpendicular", "change", "colours"))
        x, r, y = a, relation, b
        if kind == "swap":
            x, y = b, a
        elif kind == "converse":
            r = CONVERSE[relation]
        elif kind == "perpendicular":
            r = rng.choice([q for q in RELATIONS if q not in (relation, CONVERSE[relation])])
        elif kind == "change":
            x, y = (_changed(rng, a), b) if rng.random() < 0.5 else (a, _changed(rng, b))
        else:
            x, y = replace(a, colour=b.colour), replace(b, colour=a.colour)
        if normal_relation(x, r, y) != meaning:
            wrong.append(relation_variant(x, r, y, rng.randrange(len(RELATION_TEMPLATES))))
    return query, gold, wrong, ("rel",) + meaning


def build_count_pair(rng: random.Random) -> tuple[str, str, list[str], tuple]:
    desc = Desc(rng.choice(COLOUR_NAMES), rng.choice(SHAPES))
    n = rng.randint(2, 6)
    q_t, g_t = rng.sample(range(len(COUNT_TEMPLATES)), 2)
    wrong = []
    for _ in range(40):
        m, d = n, desc
        if rng.random() < 0.5:
            m = rng.choice([k for k in range(2, 8) if k != n])
        else:
            d = _changed(rng, desc)
        wrong.append(count_sentence(m, d, rng.randrange(len(COUNT_TEMPLATES))))
    return count_sentence(n, desc, q_t), count_sentence(n, desc, g_t), wrong, ("count", n, desc)


def build_paraphrase(rng: random.Random) -> SynthExample | None:
    pick = lambda: (build_relation_pair if rng.random() < 0.7 else build_count_pair)(rng)  # noqa: E731
    query, gold, wrong, meaning = pick()
    unrelated = [other[1] for other in (pick() for _ in range(N_CANDIDATES)) if other[3] != meaning]
    wrong = pick_distractors(unique(w for w in wrong if w not in (gold, query)), unrelated, N_CANDIDATES - 1)
    texts = unique([gold] + wrong)
    if len(texts) != N_CANDIDATES:
        return None
    return SynthExample(PARAPHRASE.format(query), None, [(t, None) for t in texts], {meaning})


TEXT_TASKS = (TaskDef("SynParaphrase", "text", "retrieval", build_paraphrase, mirrors="text-to-text (STS / NLI pairs)"),)
