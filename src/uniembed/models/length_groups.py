"""Length groups: one forward's rows split into padded batches of similar length (training and encode)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass
class LengthGroups:
    """One training forward as several padded batches of similar length (`Embedder.collate_by_length`).

    A step's queries and candidates differ widely in length (a caption and a page image), and one padded
    batch spends about half its tokens on padding; the groups are run in one call of the (DDP-wrapped)
    module, so distributed wrappers see a single forward. `positions[k]` is the caller's index of row k.
    """

    batches: list[dict[str, Any]]
    positions: list[int]


def length_groups(lengths: Sequence[int], max_padding: float = 0.3, min_size: int = 8) -> list[list[int]]:
    """Indices from longest to shortest, cut where a row would be padded by more than `max_padding` of the
    group's longest row (groups keep at least `min_size` rows: each forward has a fixed cost)."""
    groups: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if groups and (len(groups[-1]) < min_size or lengths[index] >= (1 - max_padding) * lengths[groups[-1][0]]):
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups
