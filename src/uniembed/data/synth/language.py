"""Turning facts into English: captions, relation sentences and their paraphrases."""
from __future__ import annotations

from typing import Sequence

from .world import NUMBER_WORDS, Count, Desc, Fact, Rel, with_article

# how each relation reads the other way round ("a left of b" == "b right of a")
CONVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def count_phrase(fact: Count) -> str:
    if fact.n == 1:
        return with_article(fact.desc.words())
    return f"{NUMBER_WORDS[fact.n]} {fact.desc.plural_words()}"


def relation_sentence(fact: Rel) -> str:
    return f"the {fact.a.words()} is {fact.relation} the {fact.b.words()}"


def join_list(parts: Sequence[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def caption_text(facts: Sequence[Fact]) -> str:
    """'a large red circle, two small blue squares and a small green star. the red circle is left of the green star.'"""
    counts = [count_phrase(f) for f in facts if isinstance(f, Count)]
    relations = [relation_sentence(f) for f in facts if isinstance(f, Rel)]
    text = join_list(counts) + "."
    if relations:
        text += " " + ". ".join(relations) + "."
    return text


# paraphrase templates for a relation sentence; {a} and {b} are descriptions, {r} the relation, {c} its converse
RELATION_TEMPLATES = (
    "the {a} is {r} the {b}",
    "the {b} is {c} the {a}",
    "{r_cap} the {b} is the {a}",
    "there is {a_art} {r} the {b}",
    "you can see the {b} {c} the {a}",
    "the {a} sits {r} the {b}",
)


def relation_variant(a: Desc, relation: str, b: Desc, template: int) -> str:
    """One of several phrasings of 'a is <relation> b' (some name b first, using the converse)."""
    return RELATION_TEMPLATES[template].format(a=a.words(), b=b.words(), a_art=with_article(a.words()), r=relation, c=CONVERSE[relation],
                                               r_cap=relation[0].upper() + relation[1:])


def normal_relation(a: Desc, relation: str, b: Desc) -> tuple:
    """A canonical form so that 'a left of b' and 'b right of a' compare equal."""
    if relation in ("right of", "below"):
        return (b, CONVERSE[relation], a)
    return (a, relation, b)
