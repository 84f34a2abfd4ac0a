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
