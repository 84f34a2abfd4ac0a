"""Recipe stages `loss.kind: reranker` and `loss.kind: listwise`: learning, the cached teacher, links, resume."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from uniembed import ConfigError, Embedder, Reranker
from uniembed.training import objectives
from uniembed.training.recipe import recipe_from_dict
from uniembed.training.trainer import Trainer

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> tuple[Path, list[dict]]:
    """16 text rows whose negatives (as `uniembed mine` would write them) differ visibly from the positives."""
    root = tmp_path_factory.mktemp("rerank_data")
    rows = []
    for i in range(16):
        colour, shape = COLOURS[i % 6], ["circle", "square"][i // 6 % 2]
        rows.append({"query": f"which {shape} is {colour}", "positive": f"a {colour} {shape} number {i}",
                     "negatives": [f"no the {COLOURS[(i + k) % 6]} thing is different" for k in (1, 2)]})
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "mix.yaml").write_text("sources:\n  - {name: t, format: jsonl, path: rows.jsonl}\n")
    return root / "mix.yaml", rows


def recipe(mix: Path, stages: list[dict], save_every: int = 0) -> dict:
    return {"name": "rr", "model": "tiny", "seed": 0, "save_every": save_every,
            "trainable": {"mode": "lora", "r": 8, "alpha": 16, "dropout": 0.1}, "stages": stages}


def embed_stage(mix, steps=2):
    return {"name": "embed", "data": str(mix), "batch_size": 4, "lr": 1e-3, "max_steps": steps}


def rerank_stage(mix, steps=12):
    return {"name": "rerank", "data": str(mix), "loss": {"kind": "reranker"}, "batch_size": 4, "lr": 5e-3,
            "max_steps": steps, "warmup_ratio": 0.0, "schedule": "constant"}


def distill_stage(mix, steps=16):
    return {"name": "distill", "data": str(mix), "loss": {"kind": "listwise", "fraction": 0.5, "candidates": 30},
            "temperature": {"init": 0.02}, "batch_size": 4, "lr": 2e-3, "max_steps": steps, "warmup_ratio": 0.0,
            "schedule": "constant"}


@pytest.fixture(scope="module")
def trained(rows, tmp_path_factory):
    torch.set_num_threads(1)
    mix, _ = rows
    run = tmp_path_factory.mktemp("rerank_run") / "run"
    entries: list[dict] = []
    final = Trainer(recipe_from_dict(recipe(mix, [embed_stage(mix), rerank_stage(mix), distill_stage(mix)])), run,
                    show_progress=False, on_step=entries.append).run()
    return run, final, entries


def pair_scores(reranker: Reranker, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    positives = reranker.score_pairs([(r["query"], r["positive"]) for r in rows])
    negatives = reranker.score_pairs([(r["query"], r["negatives"][0]) for r in rows])
    return positives, negatives


def test_reranker_stage_raises_p_yes_of_positives_above_negatives(trained, rows):
    run, _, _ = trained
    assert json.loads((run / "reranker" / "uniembed.json").read_text())["kind"] == "reranker"
    assert (run / "reranker").resolve() == (run / "stage1-rerank").resolve()
    before_pos, before_neg = pair_scores(Reranker.from_pretrained(run / "stage0-embed"), rows[1])
    after_pos, after_neg = pair_scores(Reranker.from_pretrained(run / "reranker"), rows[1])
    assert abs(before_pos.mean() - before_neg.mean()) < 0.05  # the stage started from an embedding model
    assert (after_pos > after_neg).mean() >= 0.9
    assert after_pos.mean() - after_neg.mean() > 0.3


def test_listwise_stage_distils_the_cached_fused_teacher(trained, rows):
    run, final, entries = trained
    distill = [e for e in entries if e["stage"] == "distill"]
    assert final.resolve() == (run / "stage2-distill").resolve()  # "model" skips the re-ranker stage
    assert all(math.isfinite(e["grad_norm"]) and e["grad_norm"] > 0 for e in distill)  # gradients reach the weights
    first, last = np.mean([e["loss"] for e in distill[:2]]), np.mean([e["loss"] for e in distill[-3:]])
    assert last < 0.3 * first, (first, last)

    # the cached teacher = (cos_prev + 1.0 * P_yes) / 2 over each selected query's top K, recomputed by hand
    (cache,) = (run / "cache").glob("listwise-2-t-*.npz")
    saved = np.load(cache)
    previous = Embedder.from_pretrained(run / "stage0-embed")  # the distill stage's start, not the re-ranker
    reranker = Reranker.from_pretrained(run / "reranker")
    examples = rows[1]
    pool = list(dict.fromkeys(t for r in examples for t in [r["positive"], *r["negatives"]]))
    assert saved["candidates"].shape == (math.ceil(0.5 * len(examples)), len(pool))  # K = min(30, pool size)
    pool_vectors = previous.encode(pool)
    matched = set()
    for candidates, scores in zip(saved["candidates"], saved["scores"]):
        hits = []
        for q, row in enumerate(examples):
            cosine = pool_vectors @ previous.encode([row["query"]])[0]
            if list(np.argsort(-cosine, kind="stable")) == list(candidates):
                p_yes = reranker.score_pairs([(row["query"], pool[j]) for j in candidates])
                if np.allclose(scores, (cosine[candidates] + p_yes) / 2, atol=1e-5):
                    hits.append(q)
        assert hits, "a cached teacher row matches no query's hand-computed fused scores"
        matched.add(examples[hits[0]]["query"] + str(hits))
    assert len(matched) == saved["candidates"].shape[0]

    before = Embedder.from_pretrained(run / "stage0-embed").encode(["which circle is red", "a red circle number 0"])
    after = Embedder.from_pretrained(final).encode(["which circle is red", "a red circle number 0"])
    assert np.abs(after - before).max() > 1e-4


def interrupt(monkeypatch, cls, call: int) -> None:
    """Make `cls.step` raise KeyboardInterrupt on its `call`-th call (a run killed mid-stage)."""
    real, count = cls.step, {"n": 0}

    def step(self, batch, prepared):
        count["n"] += 1
        if count["n"] == call:
            raise KeyboardInterrupt
        return real(self, batch, prepared)

    monkeypatch.setattr(cls, "step", step)


def test_interrupted_reranker_and_listwise_stages_resume_to_identical_weights(rows, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    mix, _ = rows
    stages = [rerank_stage(mix, steps=3), distill_stage(mix, steps=3)]
    stages[1]["loss"]["candidates"] = 4
    reference = Trainer(recipe_from_dict(recipe(mix, stages, save_every=1)), tmp_path / "reference",
                        show_progress=False).run()
    run = tmp_path / "interrupted"
    for cls, call in ((objectives.RerankerObjective, 3), (objectives.ListwiseObjective, 2)):
        with monkeypatch.context() as patch:
            interrupt(patch, cls, call)
            with pytest.raises(KeyboardInterrupt):
                Trainer(recipe_from_dict(recipe(mix, stages, save_every=1)), run, show_progress=False,
                        resume=run.exists()).run()
    final = Trainer(recipe_from_dict(recipe(mix, stages, save_every=1)), run, show_progress=False, resume=True).run()
    for name in ("reranker", "model"):
        expected = load_file(str(Path(reference).parent / name / "model.safetensors"))
        got = load_file(str(Path(final).parent / name / "model.safetensors"))
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[k], got[k]) for k in expected), name
    logs = [yaml.safe_load(line) for line in (run / "logs" / "train.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["step"]) for e in logs] == [("rerank", s) for s in (1, 2, 3)] + [("distill", s) for s in (1, 2, 3)]


def test_recipe_validation_of_ranking_stages(rows):
    mix, _ = rows
    with pytest.raises(ConfigError, match="listwise distillation needs a re-ranker"):
        recipe_from_dict(recipe(mix, [embed_stage(mix), distill_stage(mix)]))
    late = distill_stage(mix)
    late["loss"]["reranker"] = "rerank"
    with pytest.raises(ConfigError, match="names stage 'rerank', which runs after this one"):
        recipe_from_dict(recipe(mix, [embed_stage(mix), late, rerank_stage(mix)]))
    bad = distill_stage(mix)
    bad["loss"]["fraction"] = 0
    with pytest.raises(ConfigError, match=r"loss.fraction must be in \(0, 1\]"):
        recipe_from_dict(recipe(mix, [rerank_stage(mix), bad]))
    given = distill_stage(mix)
    given["loss"]["reranker"] = "/some/reranker/dir"
    assert recipe_from_dict(recipe(mix, [embed_stage(mix), given])).stages[1].loss.reranker == "/some/reranker/dir"
