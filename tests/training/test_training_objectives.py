"""The loss-kind registry: each kind parses its own strict options; the negative filters are checked at load."""
from __future__ import annotations

import pytest

from uniembed import ConfigError
from uniembed.losses import NegativeFilters
from uniembed.training.objectives import OBJECTIVES, ContrastiveOptions, RerankerOptions
from uniembed.training.recipe import recipe_from_dict, save_recipe, load_recipe


def recipe(*losses: dict) -> dict:
    return {"name": "t", "model": "tiny", "stages": [
        {"name": f"s{i}", "data": "mix.yaml", "max_steps": 1, "loss": loss} for i, loss in enumerate(losses)]}


def test_every_kind_parses_into_its_own_options_class():
    for kind, objective in OBJECTIVES.items():
        losses = ({"kind": "reranker"}, {"kind": kind}) if kind == "listwise" else ({"kind": kind},)
        loss = recipe_from_dict(recipe(*losses)).stages[-1].loss
        assert type(loss) is objective.options_class and loss.kind == kind
    assert type(recipe_from_dict(recipe({})).stages[0].loss) is ContrastiveOptions  # kind defaults to contrastive


def test_a_key_of_another_kind_is_rejected_naming_it_and_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['num_negatives'\] in stages\[0\].loss; known: "
                                          r"\['kind', 'negative_depth'\]"):
        recipe_from_dict(recipe({"kind": "reranker", "num_negatives": 2}))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['negative_depth'\]"):
        recipe_from_dict(recipe({"kind": "contrastive", "negative_depth": 2}))
    with pytest.raises(ConfigError, match=r"loss.kind 'triplet' is not one of \('contrastive'"):
        recipe_from_dict(recipe({"kind": "triplet"}))


def test_negative_filters_are_checked_when_the_recipe_loads():
    with pytest.raises(ConfigError, match="stage 's0': loss.top_k must be a positive integer, got 0"):
        recipe_from_dict(recipe({"top_k": 0}))
    loss = recipe_from_dict(recipe({"symmetric": True, "top_k": 8, "false_negative_margin": 0.1})).stages[0].loss
    assert loss.filters() == NegativeFilters(false_negative_margin=0.1, top_k=8, symmetric=True)


def test_saved_recipe_round_trips_each_kind(tmp_path):
    loaded = recipe_from_dict(recipe({"kind": "reranker", "negative_depth": 7}, {"kind": "listwise", "fraction": 0.5}))
    save_recipe(loaded, tmp_path / "recipe.yaml")
    again = load_recipe(tmp_path / "recipe.yaml")
    assert [s.loss for s in again.stages] == [s.loss for s in loaded.stages]
    assert isinstance(again.stages[0].loss, RerankerOptions) and not again.stages[0].loss.makes_embedder


@pytest.mark.parametrize("is_main, order", [(True, ["teacher", "barrier"]), (False, ["barrier", "teacher"])])
def test_relational_teacher_cache_is_written_by_rank_0_and_read_by_the_others_after_it(tmp_path, monkeypatch,
                                                                                        is_main, order):
    """Under torchrun only rank 0 embeds the texts and writes the teacher's cache (every rank writing one file was
    a race); the other ranks build their teacher, which reads the cache, after the barrier."""
    from types import SimpleNamespace

    from uniembed.training.objectives import relational
    from uniembed.training.objectives.base import EmbeddingObjective

    events: list[str] = []
    monkeypatch.setattr(relational, "CachedTextTeacher", lambda spec, texts, cache_dir: events.append("teacher"))
    monkeypatch.setattr(EmbeddingObjective, "start", lambda self: None)
    example = SimpleNamespace(query=SimpleNamespace(text="which circle is red", modality=1),
                              positives=[SimpleNamespace(text="a red circle")])
    source = SimpleNamespace(name="text", examples=[example])
    runner = SimpleNamespace(stage=SimpleNamespace(loss=relational.RelationalOptions()), run_dir=tmp_path,
                             mixture=SimpleNamespace(sources={"text": source}),
                             ctx=SimpleNamespace(is_main=is_main, barrier=lambda: events.append("barrier")))
    relational.RelationalObjective(runner).start()
    assert events == order
