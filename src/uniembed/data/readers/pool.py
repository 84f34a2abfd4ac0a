"""A task's candidate pool, de-duplicated by content, and the chance level of its ranking."""
from __future__ import annotations

import logging
from math import comb, log2
from typing import Sequence

from ...inputs import Item


class CandidatePool:
    """Items added once each (by `Item.content_key`); `add` returns the item's index in the pool.

    A task refers to the same file from many candidate lists (MMEB-V1: 150,000 references to 1,500 images), so
    an item whose media are all path strings is first looked up by its fields: the content key (a stat and,
    once per file, a path resolve) is computed once per distinct reference, not once per reference. A reader
    that reuses one Item object per distinct cell (`read_mmeb_v1`) is looked up by the object first: one dict
    lookup per reference (the pool keeps the object, so its id is not reused while the pool lives).
    """

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.ids: list[str] = []
        self._by_key: dict[str, int] = {}
        self._by_fields: dict[tuple, int] = {}
        self._by_object: dict[int, tuple[Item, int]] = {}

    def add(self, item: Item, item_id: str | None = None) -> int:
        known = self._by_object.get(id(item))
        if known is not None and known[0] is item:
            return known[1]
        fields = _path_fields(item)
        index = self._by_fields.get(fields) if fields is not None else None
        if index is None:
            key = item.content_key()
            index = self._by_key.get(key)
            if index is None:
                index = len(self.items)
                self._by_key[key] = index
                self.items.append(item)
                self.ids.append(item_id if item_id is not None else str(index))
            if fields is not None:
                self._by_fields[fields] = index
        self._by_object[id(item)] = (item, index)
        return index

    def __len__(self) -> int:
        return len(self.items)


def _path_fields(item: Item) -> tuple | None:
    """The item's fields as a hashable tuple when every media source is a path string (the same string means
    the same file while a task is read), else None (in-memory media are keyed by content only)."""
    video = item.video
    frames = tuple(video) if isinstance(video, (list, tuple)) else (() if video is None else (video,))
    sources = (*item.image_sources, *frames)
    if not all(isinstance(source, str) for source in sources):
        return None
    return item.text, item.instruction, tuple(item.image_sources), isinstance(video, (list, tuple)), frames


def hit_chance(list_sizes: Sequence[int], relevant_counts: Sequence[int], k: int = 1) -> float:
    """Expected hit@k of a random ranking: mean over queries of 1 - C(n - r, k) / C(n, k)."""
    if not list_sizes:
        return 0.0
    total = 0.0
    for n, r in zip(list_sizes, relevant_counts):
        k_eff = min(k, n)
        total += 1.0 - comb(n - r, k_eff) / comb(n, k_eff) if n else 0.0
    return total / len(list_sizes)


def ndcg_chance(pool_size: int, relevances: Sequence[Sequence[float]], k: int) -> float:
    """Expected nDCG@k (linear gain) of a random ranking of a pool: every item is equally likely at each
    rank, so E[DCG@k] = sum(rel) / pool_size * sum_{r<=k} 1/log2(r+1), divided by each query's ideal DCG."""
    if not relevances or pool_size == 0:
        return 0.0
    discount = sum(1.0 / log2(rank + 1) for rank in range(1, min(k, pool_size) + 1))
    total = 0.0
    for rels in relevances:
        ideal = sorted(rels, reverse=True)[:k]
        ideal_dcg = sum(rel / log2(rank + 2) for rank, rel in enumerate(ideal))
        total += (sum(rels) / pool_size * discount) / ideal_dcg if ideal_dcg else 0.0
    return total / len(relevances)


def reference_graded_pairs(labels: Sequence, grades: Sequence[float]) -> dict:
    """Label -> grade as VLM2Vec's `RankingMetrics.evaluate` pairs them (published MMEB-V2 visdoc scores).

    The reference de-duplicates the labels with `list(set(labels))` and then zips them with the grades in
    their original order (TIGER-AI-Lab/VLM2Vec@6e1e1d4 src/utils/eval_utils/metrics.py:214 and 183), so
    with graded qrels a page can get another page's grade; the ideal DCG is unchanged. For integer ids
    (ViDoRe's `corpus-id`) set order is deterministic and reproduced exactly here. For string ids it
    depends on the hash seed of the reference's run, so those keep the true pairing (a warning says so);
    when every grade is equal the pairing does not matter.
    """
    labels, grades = list(labels), list(grades)
    if len(set(grades)) <= 1 or len(labels) != len(grades):
        return dict(zip(labels, grades))
    if all(isinstance(label, int) for label in labels):
        return dict(zip(list(set(labels)), grades))
    logging.getLogger("uniembed.data").warning("graded qrels with string ids: the reference's grade pairing depends on "
                                        "its hash seed and is not reproduced; using the true grades")
    return dict(zip(labels, grades))
