"""A recipe stage with `mine:` trains on negatives retrieved by the model it starts from."""
from __future__ import annotations

import json

import numpy as np
import pytest

from uniembed import Item
from uniembed.data.examples import TrainingExample
from uniembed.data.mixture import Mixture, TrainingSource
from uniembed.errors import ConfigError
from uniembed.mining import MiningOptions
from uniembed.mining.sources import targets_pool
from uniembed.mining.stage import mine_examples, mine_mixture, mining_options
from uniembed.training.recipe import recipe_from_dict

WORDS = ["red circle", "blue square", "green star", "red square", "blue circle", "green circle", "red star",
         "blue star", "green square", "yellow circle"]


def _examples() -> list[TrainingExample]:
    return [TrainingExample(query=Item(text=f"find the {w}"), positives=[Item(text=w)],
                            negatives=[Item(text=WORDS[(i + 1) % len(WORDS)])]) for i, w in enumerate(WORDS)]


class CountingEncoder:
    """The tiny embedder, counting how many items it is asked to encode."""

    def __init__(self, embedder) -> None:
        self.embedder, self.encoded = embedder, 0
        self.model_id = embedder.model_id

    def encode(self, items, **kwargs):
        self.encoded += len(items)
        return self.embedder.encode(items, **kwargs)


def test_mined_negatives_are_the_top_non_positives_by_score(tiny_embedder):
    examples = _examples()
    _, pool = targets_pool(examples)
    chosen, removed = mine_examples(tiny_embedder, examples, pool, MiningOptions(top=10, num_negatives=3),
                                    progress=False)
    vectors = tiny_embedder.encode(pool)
    for example, picked in zip(examples, chosen):
        assert len(picked) == 3
        positive = example.positives[0].content_key()
        assert all(pool[i].content_key() != positive for i in picked)
        query = tiny_embedder.encode([example.query])[0]
        scores = vectors @ query
        others = [i for i in np.argsort(-scores, kind="stable") if pool[i].content_key() != positive]
        assert picked == [int(i) for i in others[:3]]  # the highest-scoring non-positives, in order
    assert removed["positive"] == len(examples)  # every positive retrieved in the top 10 was filtered out


def test_mined_mixture_is_cached_and_reused(tiny_embedder, tmp_path):
    mixture = Mixture({"words": TrainingSource("words", _examples(), 1.0)})
    options = MiningOptions(top=10, num_negatives=2)
    encoder = CountingEncoder(tiny_embedder)
    first = mine_mixture(encoder, mixture, options, tmp_path, is_main=True, barrier=lambda: None, progress=False)
    assert encoder.encoded > 0
    report = json.loads((tmp_path / "words.json").read_text())
    assert report["pool_size"] == len(WORDS) and report["removed"]["positive"] == len(WORDS)
    encoder.encoded = 0
    again = mine_mixture(encoder, mixture, options, tmp_path, is_main=True, barrier=lambda: None, progress=False)
    assert encoder.encoded == 0  # a resumed stage trains on the negatives it started with
    for a, b in zip(first.sources["words"].examples, again.sources["words"].examples):
        assert [n.content_key() for n in a.negatives] == [n.content_key() for n in b.negatives]
        assert len(a.negatives) == 2 and a.positives[0].content_key() not in {n.content_key() for n in a.negatives}
    changed = MiningOptions(top=10, num_negatives=1)  # other options: mined again, not read from the cache
    fewer = mine_mixture(encoder, mixture, changed, tmp_path, is_main=True, barrier=lambda: None, progress=False)
    assert encoder.encoded > 0 and all(len(e.negatives) == 1 for e in fewer.sources["words"].examples)


def _recipe(stage_extra: dict) -> dict:
    stage = {"name": "s", "data": "m.yaml", "max_steps": 1, "loss": {"kind": "contrastive", "num_negatives": 2}}
    return {"name": "r", "model": "tiny", "stages": [{**stage, **stage_extra}]}


def test_recipe_mine_block_is_validated():
    recipe_from_dict(_recipe({"mine": {"top": 50, "num_negatives": 2}}))
    with pytest.raises(ConfigError, match="unknown option"):
        recipe_from_dict(_recipe({"mine": {"topk": 50}}))
    with pytest.raises(ConfigError, match="rank-range"):
        mining_options({"top": 10, "rank_range": [5, 20]}, "stage 's'")
    with pytest.raises(ConfigError, match="num_negatives"):
        recipe_from_dict(_recipe({"mine": {"top": 50}, "loss": {"kind": "contrastive", "num_negatives": 0}}))
