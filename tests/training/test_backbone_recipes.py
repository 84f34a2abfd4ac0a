"""Each new backbone trains end to end with a shipped recipe on the synthetic benchmark, then evaluates.

All slow (30-300 s each on 2 shared cores): run with `-m slow`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uniembed import Embedder
from uniembed.demo import write_mixtures
from uniembed.eval.evaluate import evaluate
from uniembed.training.recipe import load_recipe
from uniembed.training.trainer import Trainer


RECIPES = Path(__file__).resolve().parents[2] / "recipes"


QUICK = ["stages.*.max_steps=1"]
QUICK_TASKS = ["SynT2I", "SynMotion"]  # an image and a video task


@pytest.mark.slow
@pytest.mark.parametrize("family, recipe, extra, datasets", [
    ("qwen3_vl", "vlm2vec", ["stages.*.grad_cache_chunk=2"] + QUICK, QUICK_TASKS),  # LoRA + GradCache, M-RoPE
    ("llava_onevision", "vlm2vec", ["stages.*.grad_cache_chunk=2", "embedding.positions=1d"] + QUICK, QUICK_TASKS),
    # the whole synthetic benchmark (several minutes each on 2 cores)
    ("qwen3_vl", "umarvel", ["trainable.mode=full"], None),  # full fine-tuning, 1-D positions, mean pooling
    ("llava_onevision", "unime", ["stages.*.grad_cache_chunk=2", "profile=unime-llava-onevision"], None),  # UniME on its
    # published backbone family, with its profile (the recipe names the Qwen2-VL one, whose M-RoPE LLaVA lacks)
])
def test_recipe_trains_and_evaluates(family, recipe, extra, datasets, synth_tiny, tmp_path):
    mixtures = write_mixtures(synth_tiny, tmp_path / "mixtures")
    spec = f"model=tiny:{family}"
    raw = load_recipe(RECIPES / f"{recipe}.yaml", [spec])
    text_only = [f"stages.{i}.data={mixtures['text']}" for i, stage in enumerate(raw.stages)
                 if stage.loss.kind == "relational" or stage.name == "text_nli"]
    loaded = load_recipe(RECIPES / f"{recipe}.yaml", [
        spec, "save_every=0", "stages.*.max_steps=2", "stages.*.batch_size=4", "stages.*.epochs=null",
        f"stages.*.data={mixtures['stage2']}", "embedding.max_pixels=16384", "embedding.video_max_pixels=4096",
    ] + text_only + extra)
    if family == "llava_onevision":
        assert loaded.embedding.get("positions", "1d") == "1d"
    final = Trainer(loaded, tmp_path / "run", show_progress=False).run()
    model = Embedder.from_pretrained(final)
    assert model.backbone.model.config.model_type == family
    evaluation = evaluate(model, "synthetic", synth_tiny, progress=False, batch_size=16, datasets=datasets)
    assert len(evaluation.tasks) == (len(datasets) if datasets else 16)
    assert np.isfinite(evaluation.payload["overall"])
    vectors = model.encode(["a red circle", "two blue squares"])
    assert vectors.shape == (2, model.dimension) and np.isfinite(vectors).all()
