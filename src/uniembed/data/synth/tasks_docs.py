"""Visual documents (ViDoRe counterpart): town record pages where sibling pages differ in a few words.

A family holds a town page, two pages with the same title and one fact changed, a page whose title differs
in one word, and a regional summary page that names every town of the family. A query names the town and
the facts that tell its page apart; its page has relevance 2, the summary page relevance 1 (graded qrels).
"""
from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass, replace

from .render import Page

PREFIXES = ("", "Old ", "New ", "Little ", "Great ", "Upper ")
ADJECTIVES = ("Amber", "Silver", "Granite", "Willow", "Cedar", "Copper", "Misty", "Golden", "Hollow", "Iron", "Maple",
              "Raven", "Stone", "Frost", "Sunny", "Quiet", "Bright", "Ashen", "Velvet", "Crystal")
NOUNS = ("Harbor", "Haven", "Ridge", "Falls", "Crossing", "Hollow", "Bay", "Field", "Port", "Mill", "Brook", "Rock",
         "Gate", "Vale")
REGIONS = ("North", "South", "East", "West", "Upper", "Lower", "Central", "Coastal", "Highland", "Lake")
EXPORTS = ("copper", "tin", "wool", "salt", "timber", "grain", "glass", "cheese", "silk", "coal", "honey", "paper")
RIVERS = ("Lune", "Dart", "Ouse", "Tay", "Wye", "Exe", "Nene", "Aire", "Tamar", "Kennet")
MAYORS = ("T. Okafor", "M. Lindqvist", "A. Ferreira", "J. Novak", "R. Haddad", "S. Tanaka", "L. Moreau", "K. Osei",
          "P. Ivanova", "D. Reyes")
VARYING = ("export", "founded", "river", "mayor")
DOC_QUERY = "Find a document image that matches the given query: {}\n"  # instruction for MMEB-train rows


@dataclass(frozen=True)
class Town:
    name: str
    population: int
    export: str
    founded: int
    river: str
    mayor: str


def random_value(rng: random.Random, field: str):
    return {"export": lambda: rng.choice(EXPORTS), "founded": lambda: rng.randint(1600, 1899),
            "river": lambda: rng.choice(RIVERS), "mayor": lambda: rng.choice(MAYORS)}[field]()


def town_page(town: Town) -> Page:
    lines = (f"Population: {town.population:,}", f"Main export: {town.export}", f"Founded: {town.founded}",
             f"River: {town.river}", f"Mayor: {town.mayor}")
    prose = (f"{town.name} grew up on the banks of the {town.river}. Since its founding in {town.founded} the town "
             f"has traded {town.export} with its neighbours. The council, led by {town.mayor}, meets each spring. "
             f"Visitors note the old market square and the bridge over the {town.river}.")
    return Page(town.name, lines, tuple(textwrap.wrap(prose, 36)))


def summary_page(region: str, towns: list[Town]) -> Page:
    lines = tuple(f"{t.name}: {t.export}, {t.founded}" for t in towns)
    prose = (f"This summary lists the towns of the {region} district with their main export and founding year. "
             "Population figures and council records are kept on each town's own page.")
    return Page(f"{region} district summary", lines, tuple(textwrap.wrap(prose, 36)))


CLAUSES = {
    "export": "which exports {export}",
    "founded": "founded in {founded}",
    "river": "on the {river} river",
    "mayor": "whose mayor is {mayor}",
}
TEMPLATES = (
    "What is the population of {name}, {clauses}?",
    "How many people live in {name}, {clauses}?",
    "Population of {name} ({clauses})",
)


def query_text(rng: random.Random, town: Town, fields: list[str]) -> str:
    clauses = [CLAUSES[f].format(**town.__dict__) for f in fields]
    joined = ", ".join(clauses[:-1]) + " and " + clauses[-1] if len(clauses) > 1 else clauses[0]
    return rng.choice(TEMPLATES).format(name=town.name, clauses=joined)


@dataclass
class DocFamily:
    pages: list[Page]  # town pages then the summary page (last)
    queries: list[tuple[str, int]]  # (query text, index of its page in `pages`)
    titles: set


def build_family(rng: random.Random, forbidden_titles: set) -> DocFamily | None:
    prefix, adjective, noun = rng.choice(PREFIXES), rng.choice(ADJECTIVES), rng.choice(NOUNS)
    name = f"{prefix}{adjective} {noun}"
    other = f"{prefix}{adjective} {rng.choice([n for n in NOUNS if n != noun])}" if rng.random() < 0.5 else \
        f"{prefix}{rng.choice([a for a in ADJECTIVES if a != adjective])} {noun}"
    if name in forbidden_titles or other in forbidden_titles:
        return None
    base = Town(name, rng.randint(1000, 9999), rng.choice(EXPORTS), rng.randint(1600, 1899), rng.choice(RIVERS),
                rng.choice(MAYORS))
    f1, f2 = rng.sample(VARYING, 2)
    towns = [base]
    for field in (f1, f2):
        value = random_value(rng, field)
        while value == getattr(base, field):
            value = random_value(rng, field)
        towns.append(replace(base, population=rng.randint(1000, 9999), **{field: value}))
    towns.append(replace(base, name=other, population=rng.randint(1000, 9999)))
    pages = [town_page(t) for t in towns] + [summary_page(rng.choice(REGIONS), towns)]
    queries = [(query_text(rng, t, rng.sample([f1, f2], 2)), k) for k, t in enumerate(towns)]
    return DocFamily(pages, queries, {name, other})


def build_families(rng: random.Random, n_queries: int, forbidden_titles: set) -> list[DocFamily]:
    families: list[DocFamily] = []
    used = set(forbidden_titles)
    total = 0
    for _ in range(100 * n_queries + 100):
        if total >= n_queries:
            break
        family = build_family(rng, used)
        if family is None:
            continue
        used |= family.titles
        families.append(family)
        total += len(family.queries)
    return families
