"""`loss.matryoshka` in a recipe: checked at load, trained under GradCache, its dims saved and exported."""
from __future__ import annotations

import json
import logging

import pytest

from uniembed import ConfigError, Embedder
from uniembed.training.recipe import recipe_from_dict
from uniembed.training.trainer import Trainer

from training_data import write_training_set


def recipe(data, matryoshka, kind: str = "contrastive") -> dict:
    return {"name": "mrl", "model": "tiny", "trainable": {"mode": "full", "freeze_vision": True}, "seed": 1,
            "stages": [{"name": "mrl", "data": str(data), "loss": {"kind": kind, "matryoshka": matryoshka},
                        "batch_size": 4, "grad_cache_chunk": 3, "lr": 1e-3, "max_steps": 2}]}


@pytest.mark.parametrize("matryoshka, message", [
    ({"dims": [64, 16], "weight": [1, 1]}, r"unknown key\(s\) \['weight'\] in stage 'mrl': loss.matryoshka"),
    ({"dims": [16, 64]}, r"stage 'mrl': loss.matryoshka.dims must be distinct and descending, got \[16, 64\]; "
                         r"write \[64, 16\]"),
    ({"dims": [64, 0]}, "stage 'mrl': loss.matryoshka.dims must be a non-empty list of positive integers"),
    ({"dims": []}, "non-empty list"),
    ({"dims": [64, 16], "weights": [1]}, r"stage 'mrl': loss.matryoshka.weights must be 2 positive numbers"),
    ([64, 16], "stage 'mrl': loss.matryoshka must be a mapping"),
])
def test_bad_options_fail_when_the_recipe_loads(tmp_path, matryoshka, message):
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict(recipe(tmp_path / "mix.yaml", matryoshka))
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict(recipe(tmp_path / "mix.yaml", matryoshka, kind="relational"))


def test_trains_saves_the_dims_exports_them_and_warns_at_other_widths(tmp_path, caplog):
    mixture = write_training_set(tmp_path / "data", count=8)
    with pytest.raises(ConfigError, match=r"stage 'mrl': loss.matryoshka.dims \[128, 16\] exceed the model's 64"):
        Trainer(recipe_from_dict(recipe(mixture, {"dims": [128, 16]})), tmp_path / "wide", show_progress=False).run()
    final = Trainer(recipe_from_dict(recipe(mixture, {"dims": [64, 16], "weights": [1, 0.5]})), tmp_path / "run",
                    show_progress=False).run()
    assert json.loads((final / "uniembed.json").read_text())["embedding"]["matryoshka_dims"] == [64, 16]
    assert json.loads((final / "config.json").read_text())["matryoshka_dimensions"] == [64, 16]
    model = Embedder.from_pretrained(final)
    with caplog.at_level(logging.WARNING, logger="uniembed.models.pooling"):
        assert model.encode(["a red circle"], truncate_dim=16).shape == (1, 16)
        assert not caplog.records  # a trained width: no warning
        assert model.encode(["a red circle"], truncate_dim=24).shape == (1, 24)
    assert [r.getMessage() for r in caplog.records] == [
        "truncate_dim=24: the model was trained for Matryoshka widths [64, 16]; other widths may score lower"]
    with pytest.raises(ConfigError, match="outside the model's 1..64"):
        model.encode(["a red circle"], truncate_dim=65)


@pytest.mark.slow
@pytest.mark.distributed
def test_matryoshka_under_fsdp_and_zero_matches_ddp(tmp_path):
    """`loss.matryoshka` on 2 gloo ranks (torchrun): FSDP2 (sharded language layers) and DeepSpeed ZeRO-1
    (partitioned Adam state) end with DDP's weights up to float summation order, with GradCache chunks on ranks
    holding different numbers of rows and the cut widths gathered across ranks. Three launches: slow."""
    from training_runs import assert_close_to_ddp, train_under_each_strategy, uneven_full_recipe

    data = tmp_path / "data"
    write_training_set(data)
    mrl = uneven_full_recipe(data, tmp_path)
    mrl["stages"][0]["max_steps"], mrl["stages"][1]["max_steps"] = 2, 3
    for stage in mrl["stages"]:
        stage["loss"]["matryoshka"] = {"dims": [64, 16, 4], "weights": [1.0, 1.0, 2.0]}
    runs = train_under_each_strategy(mrl, tmp_path)
    strategies = list(runs)
    for strategy in strategies[1:]:
        saved = json.loads((runs[strategy] / "model" / "uniembed.json").read_text())["embedding"]
        assert saved["matryoshka_dims"] == [64, 16, 4], strategy
        assert_close_to_ddp(runs[strategy], runs["ddp"])
    if len(strategies) < 3:
        pytest.skip("DeepSpeed is not installed (`make setup` installs it): ZeRO-1 not checked")


@pytest.mark.slow
@pytest.mark.distributed
def test_relational_matryoshka_under_fsdp_and_zero_matches_ddp(tmp_path):
    """UniME's relational distillation with `loss.matryoshka` on 2 gloo ranks (torchrun, text-only data, GradCache
    chunks in stage 2): FSDP2 and DeepSpeed ZeRO-1 end with DDP's weights. Rank 0 alone embeds the texts with the
    teacher and writes its cache; the other rank reads it (no shared temporary file). Three launches: slow."""
    from training_runs import assert_close_to_ddp, train_under_each_strategy, uneven_full_recipe

    data = tmp_path / "data"
    write_training_set(data)
    relational = uneven_full_recipe(data, tmp_path)
    relational["stages"][0]["max_steps"], relational["stages"][1]["max_steps"] = 2, 3
    for stage in relational["stages"]:
        stage["data"] = str(data / "text_mixture.yaml")
        stage["loss"] = {"kind": "relational", "matryoshka": {"dims": [64, 16, 4], "weights": [1.0, 1.0, 2.0]}}
        stage.pop("temperature")
    runs = train_under_each_strategy(relational, tmp_path)
    for strategy, run in runs.items():
        assert [path.name for path in (run / "cache").glob("*")] == [
            next((runs["ddp"] / "cache").glob("teacher-*.npy")).name], strategy  # one cache file, no temporaries
    for strategy in list(runs)[1:]:
        assert_close_to_ddp(runs[strategy], runs["ddp"])
    if len(runs) < 3:
        pytest.skip("DeepSpeed is not installed (`make setup` installs it): ZeRO-1 not checked")
