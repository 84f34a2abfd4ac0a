"""`uniembed demo`: the main job on the built-in default, end to end on one CPU.

Generates the synthetic benchmark, trains a tiny Qwen2-VL with the real two-stage recipe in
`recipes/demo.yaml` (retrieval adaptation with symmetric InfoNCE, then instruction tuning with the
modality mask and hard negatives), evaluates it on every synthetic test task, prints each score beside
its chance level, and writes `results.json` and `report.html`. Each step is skipped when its output is
already complete, so an interrupted demo resumes where it stopped.

Each phase's wall and CPU time (this process and its children, with the load average) goes to the console,
`phases.md` and `results.json` (`phases.PhaseClock`). The demo trains on one torch thread by default: its
1.1M-parameter model's operations are too small to split, and the loader thread prepares the next batch on the
second core (benchmarks/results/demo_phases.md).
"""
from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .phases import PhaseClock

logger = logging.getLogger("uniembed.demo")
TRAIN_FORMATS = {"mmeb_train": "mmeb-train", "mmeb_train_video": "mmeb-train", "jsonl_triplets": "jsonl"}
# stage 1 (retrieval adaptation) sees plain pair data of every modality; stage 2 every instruction task
STAGE1_GROUP_TASKS = ("SynT2I", "SynI2T", "SynT2V", "SynParaphrase", "SynDocs")
# stage-2 weight of a source relative to its size (`uniembed demo --oversample SynGround=2`). Grounding learns
# slowest (50 grounding-only steps from the stage-1 model: 28% hit@1, 200 steps: 34%), so it gets 4x its share
# and stage 2 gets the extra steps (recipes/demo.yaml), leaving every other source its ~43 steps (benchmarks/README.md)
STAGE2_OVERSAMPLE: dict[str, float] = {"SynGround": 4.0}
# torch threads for the demo: one trains the tiny model fastest on two cores, and many times faster than two
# when other jobs share the cores (benchmarks/results/demo_phases.md); 0 keeps torch's default
DEMO_THREADS = 1


def default_recipe_path() -> Path:
    """recipes/demo.yaml of the source tree, or the copy packaged with uniembed."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "recipes" / "demo.yaml", here.parent / "recipes" / "demo.yaml"):
        if candidate.exists():
            return candidate
    raise ConfigError("recipes/demo.yaml not found; pass --recipe")


def read_metadata(data_dir: Path) -> dict[str, Any]:
    return json.loads((Path(data_dir) / "metadata.json").read_text())


def write_mixtures(data_dir: Path, out_dir: Path, metadata: dict[str, Any] | None = None,
                   oversample: dict[str, float] | None = None) -> dict[str, Path]:
    """Mixture files for the demo stages (and a text-only one), from the synthetic benchmark's training metadata.

    `oversample` multiplies a stage-2 source's weight (default: its size), e.g. {"SynGround": 3}."""
    oversample = STAGE2_OVERSAMPLE if oversample is None else oversample
    data_dir = Path(data_dir).resolve()  # mixture paths resolve against the mixture file: write them absolute
    metadata = metadata or read_metadata(data_dir)
    sources = []
    for entry in metadata["train"]:
        source = {"name": entry["name"], "format": TRAIN_FORMATS[entry["layout"]], "path": str(data_dir / entry["path"])}
        if entry.get("media_root"):
            key = "image_root" if source["format"] == "mmeb-train" else "media_root"
            source[key] = str(data_dir / entry["media_root"])
        sources.append(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    import yaml

    paths = {}
    stage1 = [s for s in sources if s["name"] in STAGE1_GROUP_TASKS]
    text = [s for s, entry in zip(sources, metadata["train"]) if entry["modality_group"] == "text"]
    unknown = sorted(set(oversample) - {s["name"] for s in sources})
    if unknown:
        raise ConfigError(f"cannot oversample {unknown}: the synthetic training sources are "
                          f"{', '.join(s['name'] for s in sources)}")
    stage2 = [s | {"weight": float(entry["num_rows"]) * oversample[s["name"]]} if s["name"] in oversample else s
              for s, entry in zip(sources, metadata["train"])]
    for name, chosen in (("stage1", stage1), ("stage2", stage2), ("text", text)):
        paths[name] = out_dir / f"{name}_mixture.yaml"
        paths[name].write_text(yaml.safe_dump({"sources": chosen}, sort_keys=False))
    return paths


def run_demo(out: str | Path = "runs/demo", size: str = "small", seed: int = 0, recipe: str | Path | None = None,
             overrides: list[str] | None = None, batch_size: int = 64,
             oversample: dict[str, float] | None = None, threads: int = DEMO_THREADS) -> dict[str, Any]:
    """Run the whole demo into `out`; returns the results payload (also written to results.json).

    `threads` sets torch's intra-op threads for the run (restored after it; 0 keeps torch's default)."""
    import torch

    if threads < 0:
        raise ConfigError(f"threads must be 0 (torch's default) or a positive count, got {threads}")
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run_demo(Path(out), size, seed, recipe, overrides, batch_size, oversample)
    finally:
        torch.set_num_threads(previous)


def _run_demo(out: Path, size: str, seed: int, recipe: str | Path | None, overrides: list[str] | None,
              batch_size: int, oversample: dict[str, float] | None) -> dict[str, Any]:
    import torch

    from .data.synth.generate import generate
    from .eval.evaluate import evaluate
    from .models.embedder import Embedder
    from .training.logs import read_log
    from .training.recipe import load_recipe
    from .training.trainer import Trainer

    clock = PhaseClock(f"torch threads {torch.get_num_threads()}")
    data_dir = out / "data"
    with clock.phase("synthetic data"):
        if not (data_dir / "metadata.json").exists():
            generate(data_dir, size=size, seed=seed)

    metadata = read_metadata(data_dir)
    mixtures = write_mixtures(data_dir, out / "mixtures", metadata, oversample)
    recipe_overrides = [f"stages.0.data={mixtures['stage1']}", f"stages.1.data={mixtures['stage2']}", f"seed={seed}"]
    recipe_spec = load_recipe(recipe or default_recipe_path(), recipe_overrides + list(overrides or []))
    train_dir = out / "train"
    with clock.phase("training") as training:
        trainer = Trainer(recipe_spec, train_dir, resume=train_dir.exists(), on_step=training.mark_by("stage"))
        model_dir = trainer.run()

    with clock.phase("evaluation"):
        model = Embedder.from_pretrained(model_dir)
        evaluation = evaluate(model, "synthetic", data_dir, out / "eval", batch_size=batch_size, cache_dir=out / "cache")

    with clock.phase("report"):
        payload = dict(evaluation.payload)  # carries each task's chance level (percent) from the suite
        tasks = {task["name"]: task for task in metadata["tasks"]}
        payload["recipe"] = recipe_spec.name
        payload["model_dir"] = str(model_dir)
        payload["meta_tasks"] = meta_task_table(payload, tasks)
        payload["timings"] = _timings(clock)  # the report shows the phases before it
        (out / "report.html").write_text(demo_report_html(payload, read_log(train_dir)))
    payload["timings"] = _timings(clock)
    payload["phases"] = clock.rows()
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out / "phases.md").write_text(clock.markdown() + "\n")
    print(score_table(payload, tasks))
    print("\n" + clock.markdown())
    return payload


def _timings(clock: PhaseClock) -> dict[str, float]:
    """results.json's `timings` (wall seconds, the keys of earlier demos); `phases` has wall and CPU per phase."""
    keys = {"synth_s": "synthetic data", "train_s": "training", "eval_s": "evaluation", "report_s": "report"}
    return {key: wall for key, name in keys.items() if (wall := clock.wall(name)) is not None}


def meta_task_table(payload: dict, tasks: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Mean score and mean chance per meta-task (the demo's 3x-chance target is checked on these)."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for name, task in tasks.items():
        if name in payload["scores"]:
            groups.setdefault(task["meta_task"], []).append((payload["scores"][name], payload["chance"][name]))
    return {meta: {"score": sum(s for s, _ in rows) / len(rows), "chance": sum(c for _, c in rows) / len(rows),
                   "tasks": len(rows)} for meta, rows in groups.items()}


def score_table(payload: dict, meta: dict[str, dict]) -> str:
    lines = [f"{'task':16s} {'meta-task':18s} {'group':7s} {'metric':7s} {'score':>7s} {'chance':>7s} {'x chance':>8s}"]
    for name, score in payload["scores"].items():
        task = meta.get(name, {})
        chance = payload["chance"].get(name, float("nan"))
        lines.append(f"{name:16s} {task.get('meta_task', ''):18s} {task.get('modality_group', ''):7s} "
                     f"{task.get('metric', ''):7s} {score:7.1f} {chance:7.1f} {score / chance if chance else 0:8.1f}")
    lines.append("")
    for name, row in payload["meta_tasks"].items():
        lines.append(f"{'meta-task ' + name:35s} {row['score']:7.1f} {row['chance']:7.1f} {row['score'] / row['chance']:8.1f}")
    lines.append(f"{'overall':35s} {payload['overall']:7.1f}")
    return "\n".join(lines)


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _training_curves(log: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    for index, (key, title) in enumerate((("loss", "loss"), ("lr", "learning rate"), ("temperature", "temperature"))):
        offset = 0
        for stage in dict.fromkeys(e["stage"] for e in log):
            rows = [e for e in log if e["stage"] == stage]
            axes[index].plot([offset + e["step"] for e in rows], [e[key] for e in rows], label=stage)
            offset += rows[-1]["step"] if rows else 0
        axes[index].set_title(title)
        axes[index].set_xlabel("step")
    axes[0].legend()
    return _png(fig)


def _score_chart(payload: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(payload["scores"])
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names)), 3.6))
    positions = range(len(names))
    ax.bar([p - 0.2 for p in positions], [payload["scores"][n] for n in names], width=0.4, label="trained")
    ax.bar([p + 0.2 for p in positions], [payload["chance"].get(n, 0) for n in names], width=0.4, label="chance")
    ax.set_xticks(list(positions))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    return _png(fig)


def demo_report_html(payload: dict, log: list[dict]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{score:.1f}</td><td>{payload['chance'].get(name, float('nan')):.1f}</td></tr>"
        for name, score in payload["scores"].items())
    meta = "".join(f"<tr><td>{html.escape(name)}</td><td>{row['score']:.1f}</td><td>{row['chance']:.1f}</td></tr>"
                   for name, row in payload["meta_tasks"].items())
    curves = f'<img alt="training curves" src="{_training_curves(log)}">' if log else "<p>no training log</p>"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>uniembed demo</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head><body>
<h1>uniembed demo: recipe <code>{html.escape(payload['recipe'])}</code> on the synthetic benchmark</h1>
<p>Overall {payload['overall']:.1f}. Timings: {html.escape(json.dumps(payload['timings']))}.
Per-task details and retrieved examples: <a href="eval/report.html">eval/report.html</a>.</p>
<h2>Training</h2>{curves}
<h2>Scores and chance</h2><img alt="scores" src="{_score_chart(payload)}">
<h3>Meta-tasks</h3><table><tr><th>meta-task</th><th>score</th><th>chance</th></tr>{meta}</table>
<h3>Tasks</h3><table><tr><th>task</th><th>score</th><th>chance</th></tr>{rows}</table>
</body></html>"""
