"""Which retrieved candidates become hard negatives: the filters and their order (docs/methods.md §4).

Every query's top N (by the retrieval model) is scanned in rank order. A candidate is removed by the
first filter that applies, and the report counts removals per filter:

    positive            the candidate is a positive (same id; or, for pools without ids, the same content)
    positive_duplicate  another document whose content is identical to a positive (`Item.content_key`)
    rank_range          its retrieval rank (0-based, positives included) is outside [start, end)
    max_score           score > max_score
    absolute_margin     score > positive_score - absolute_margin       (sentence-transformers semantics)
    relative_margin     score > positive_score * (1 - relative_margin)
    duplicate_negative  same content as a negative already kept for this query

What survives is "eligible"; the first `num_negatives` eligible candidates are kept ("top", U-MARVEL's
rule) or a seeded draw of them ("random", same draw for a query whatever the sharding). A query with
fewer eligible candidates than asked keeps what it has: nothing is ever refilled at random.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import AbstractSet, Sequence

from ..errors import ConfigError

FILTERS = ("positive", "positive_duplicate", "rank_range", "max_score", "absolute_margin", "relative_margin",
           "duplicate_negative")
SAMPLING = ("top", "random")


@dataclass(frozen=True)
class MiningOptions:
    """What to retrieve and which candidates to keep. Defaults are U-MARVEL's: top 100, first 5 non-positives."""

    top: int = 100
    rank_range: tuple[int, int] | None = None  # [start, end) over retrieval ranks; None = (0, top)
    num_negatives: int = 5
    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    sampling: str = "top"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.top < 1:
            raise ConfigError(f"--top must be at least 1, got {self.top}")
        if self.num_negatives < 1:
            raise ConfigError(f"--num-negatives must be at least 1, got {self.num_negatives}")
        start, end = self.window
        if not 0 <= start < end:
            raise ConfigError(f"--rank-range {start}:{end} is empty; use START:END with 0 <= START < END")
        if end > self.top:
            raise ConfigError(f"--rank-range ends at {end} but only the top {self.top} are retrieved; "
                              f"raise --top to at least {end}")
        if self.relative_margin is not None and not 0 <= self.relative_margin < 1:
            raise ConfigError(f"--relative-margin must be in [0, 1), got {self.relative_margin}")
        if self.absolute_margin is not None and self.absolute_margin < 0:
            raise ConfigError(f"--absolute-margin must be >= 0, got {self.absolute_margin}")
        if self.sampling not in SAMPLING:
            raise ConfigError(f"--sampling must be one of {SAMPLING}, got {self.sampling!r}")

    @property
    def window(self) -> tuple[int, int]:
        return tuple(self.rank_range) if self.rank_range is not None else (0, self.top)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rank_range"] = list(self.window)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "MiningOptions":
        data = dict(data)
        if data.get("rank_range") is not None:
            data["rank_range"] = tuple(data["rank_range"])
        return cls(**data)


def parse_rank_range(text: str | None) -> tuple[int, int] | None:
    """'10:210' -> (10, 210); None stays None."""
    if text is None:
        return None
    try:
        start, end = (int(part) for part in text.split(":"))
    except ValueError:
        raise ConfigError(f"--rank-range must look like START:END (e.g. 0:100 or 10:210), got {text!r}") from None
    return start, end


@dataclass
class Selection:
    """One query's kept negatives (pool indices, scores, retrieval ranks) and what each filter removed."""

    indices: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    removed: Counter = field(default_factory=Counter)
    eligible: int = 0


def first_filter(rank: int, score: float, key: str, *, is_positive: bool, positive_keys: AbstractSet[str],
                 positive_score: float, kept_keys: AbstractSet[str], options: MiningOptions) -> str | None:
    """The name of the first filter that removes this candidate, or None when it is eligible."""
    start, end = options.window
    if is_positive:
        return "positive"
    if key in positive_keys:
        return "positive_duplicate"
    if not start <= rank < end:
        return "rank_range"
    if options.max_score is not None and score > options.max_score:
        return "max_score"
    if options.absolute_margin is not None and score > positive_score - options.absolute_margin:
        return "absolute_margin"
    if options.relative_margin is not None and score > positive_score * (1.0 - options.relative_margin):
        return "relative_margin"
    if key in kept_keys:
        return "duplicate_negative"
    return None


def select_negatives(ranked: Sequence[int], scores: Sequence[float], *, pool_keys: Sequence[str],
                     positive_indices: AbstractSet[int], positive_keys: AbstractSet[str], positive_score: float,
                     options: MiningOptions, query_key: str = "") -> Selection:
    """Apply the filters to one query's ranking (pool indices by descending score) and keep negatives.

    `positive_indices`: pool rows that are this query's positives; `positive_keys`: their content keys
    (a pool row with the same content under another id is a duplicate of a positive, never a negative).
    `query_key` seeds the "random" draw so each query's draw is independent of sharding and order.
    """
    selection = Selection()
    eligible: list[tuple[int, float, int]] = []
    eligible_keys: set[str] = set()
    for rank, (index, score) in enumerate(zip(_as_list(ranked), _as_list(scores))):
        if index < 0:
            continue
        reason = first_filter(rank, score, pool_keys[index], is_positive=index in positive_indices,
                              positive_keys=positive_keys, positive_score=positive_score,
                              kept_keys=eligible_keys, options=options)
        if reason is not None:
            selection.removed[reason] += 1
            continue
        eligible.append((index, score, rank))
        eligible_keys.add(pool_keys[index])
    selection.eligible = len(eligible)
    if options.sampling == "random" and len(eligible) > options.num_negatives:
        draw = random.Random(f"uniembed-mine:{options.seed}:{query_key}")
        chosen = sorted(draw.sample(range(len(eligible)), options.num_negatives))
        eligible = [eligible[i] for i in chosen]
    for index, score, rank in eligible[: options.num_negatives]:
        selection.indices.append(index)
        selection.scores.append(score)
        selection.ranks.append(rank)
    return selection


def _as_list(values: Sequence) -> list:
    """Plain Python numbers (iterating a NumPy row element by element is several times slower)."""
    return values.tolist() if hasattr(values, "tolist") else list(values)
