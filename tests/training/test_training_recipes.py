"""Every shipped recipe runs end to end on the synthetic benchmark with the tiny model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uniembed import Embedder
from uniembed.demo import write_mixtures
from uniembed.training.recipe import load_recipe
from uniembed.training.trainer import Trainer

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("name", ["vlm2vec", "unite", "demo", "unime", "rzenembed", "umarvel"])
def test_recipe_runs_on_synthetic_data(name, synth_tiny, tmp_path):
    mixtures = write_mixtures(synth_tiny, tmp_path / "mixtures")
    raw = load_recipe(RECIPES / f"{name}.yaml", ["model=tiny"])
    text_only = [f"stages.{i}.data={mixtures['text']}" for i, stage in enumerate(raw.stages)
                 if stage.loss.kind == "relational" or stage.name == "text_nli"]
    recipe = load_recipe(RECIPES / f"{name}.yaml", [
        "model=tiny", "save_every=0", "stages.*.max_steps=2", "stages.*.batch_size=4", "stages.*.epochs=null",
        f"stages.*.data={mixtures['stage2']}", "embedding.max_pixels=12544", "embedding.video_max_pixels=3136",
        "embedding.min_pixels=3136", "embedding.video_min_pixels=null",  # small pixels whatever the profile says
    ] + text_only)
    final = Trainer(recipe, tmp_path / "run", show_progress=False).run()
    model = Embedder.from_pretrained(final)
    assert model.config.pooling == recipe.embedding.get("pooling", "last")
    vectors = model.encode(["a red circle", "two blue squares"])
    assert vectors.shape == (2, model.dimension) and np.isfinite(vectors).all()
    assert len(list((tmp_path / "run").glob("stage*-*/uniembed.json"))) == len(recipe.stages)


def test_demo_mixtures_oversample_a_stage2_source_and_reject_unknown_ones(synth_tiny, tmp_path):
    import json

    import yaml

    from uniembed import ConfigError

    paths = write_mixtures(synth_tiny, tmp_path / "m", oversample={"SynGround": 2.5})
    sources = {s["name"]: s for s in yaml.safe_load(paths["stage2"].read_text())["sources"]}
    rows = {e["name"]: e["num_rows"] for e in json.loads((synth_tiny / "metadata.json").read_text())["train"]}
    assert sources["SynGround"]["weight"] == 2.5 * rows["SynGround"]
    assert all("weight" not in s for name, s in sources.items() if name != "SynGround")
    with pytest.raises(ConfigError, match="cannot oversample \\['SynGrond'\\]"):
        write_mixtures(synth_tiny, tmp_path / "n", oversample={"SynGrond": 2})
