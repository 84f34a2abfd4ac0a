"""Does late interaction learn here? The demo's first stage trained twice from the same random tiny model, once
single-vector (InfoNCE on pooled vectors, recipes/demo.yaml as it is) and once multi-vector (InfoNCE over
MaxSim, `loss.kind: late_interaction` with a token head), then both scored on every synthetic test task: the
single-vector model by `uniembed eval`, the multi-vector one by `uniembed eval --multi-vector` at pool factors 1
and 2, beside the untrained multi-vector model (the floor).

Same data (the demo's stage-1 mixture: the pair tasks of the synthetic training split), steps, batch, learning
rate and schedule for both; the late-interaction stage differs only in the loss, its temperature (0.02,
colpali-engine's ColbertLoss default: illuin-tech/colpali@9be8f19 colpali_engine/loss/late_interaction_losses.py:123)
and `embedding.multi_vector_dim`. One torch thread, as the demo trains. Writes
benchmarks/results/late_interaction_cpu.{md,json}.

    python benchmarks/late_interaction.py [--steps 500] [--multi-vector-dim 64] [--work DIR]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LATE_INTERACTION_TEMPERATURE = 0.02  # colpali_engine/loss/late_interaction_losses.py:123 (see the docstring)


def stage_one(recipe: dict, mixture: Path, steps: int) -> dict:
    """The demo recipe reduced to its first stage on `mixture`, `steps` long."""
    one = dict(recipe, stages=[dict(recipe["stages"][0], data=str(mixture), max_steps=steps)])
    one["save_every"] = steps
    return one


def late_interaction(recipe: dict, dim: int) -> dict:
    """The same stage with InfoNCE over MaxSim and a `dim`-wide token head."""
    stage = dict(recipe["stages"][0], loss={"kind": "late_interaction", "num_negatives": 0, "normalize_scores": True},
                 temperature={"init": LATE_INTERACTION_TEMPERATURE})
    return dict(recipe, name=recipe["name"] + "-late-interaction", stages=[stage],
                embedding=dict(recipe.get("embedding") or {}, multi_vector_dim=dim))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500, help="training steps of each model (the demo's stage 1: 500)")
    parser.add_argument("--multi-vector-dim", type=int, default=64, help="token head width (tiny:mini is 96 wide)")
    parser.add_argument("--work", default="runs/late_interaction", help="data, runs and evaluations (kept, resumable)")
    parser.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
    args = parser.parse_args()

    import torch

    from uniembed.data.synth.generate import generate
    from uniembed.demo import default_recipe_path, write_mixtures
    from uniembed.eval.evaluate import evaluate
    from uniembed.models.embedder import Embedder
    from uniembed.training.recipe import recipe_from_dict
    from uniembed.training.trainer import Trainer

    torch.set_num_threads(1)
    work = Path(args.work)
    data = work / "data"
    if not (data / "metadata.json").exists():
        generate(data, size="small", seed=0)
    mixtures = write_mixtures(data, work / "mixtures")
    demo = yaml.safe_load(default_recipe_path().read_text())
    single = stage_one(demo, mixtures["stage1"], args.steps)
    recipes = {"single-vector": single, "late interaction": late_interaction(single, args.multi_vector_dim)}
    report: dict = {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
                    "machine": f"{os.cpu_count()}-core CPU, no GPU", "steps": args.steps,
                    "multi_vector_dim": args.multi_vector_dim, "load_average_start": round(os.getloadavg()[0], 2),
                    "recipes": recipes, "runs": {}}
    models = {}
    for name, recipe in recipes.items():
        start = time.perf_counter()
        models[name] = Trainer(recipe_from_dict(recipe), work / name.replace(" ", "-"), show_progress=False).run()
        report["runs"][name] = {"train_seconds": round(time.perf_counter() - start, 1)}
    untrained = work / "untrained-late-interaction"
    if not (untrained / "uniembed.json").exists():
        Embedder.tiny(size=single["model"].split(":")[1], seed=single["seed"],
                      multi_vector_dim=args.multi_vector_dim).save_pretrained(untrained)
    evaluations = [("single-vector", models["single-vector"], None),
                   ("late interaction", models["late interaction"], 1),
                   ("late interaction, pool factor 2", models["late interaction"], 2),
                   ("untrained, late interaction", untrained, 1)]
    scores = {}
    for name, model_dir, pool in evaluations:
        start = time.perf_counter()
        model = Embedder.from_pretrained(model_dir)
        out = work / "eval" / name.replace(" ", "-").replace(",", "")
        payload = evaluate(model, "synthetic", data, out, batch_size=args.batch_size, cache_dir=work / "cache",
                           multi_vector_pool=pool, progress=False).payload
        scores[name] = payload
        report["runs"].setdefault(name, {})["eval_seconds"] = round(time.perf_counter() - start, 1)
    report["scores"] = {name: {"overall": round(p["overall"], 2), "groups": {k: round(v, 2) for k, v in p["groups"].items()},
                               "tasks": {k: round(v, 2) for k, v in p["scores"].items()}} for name, p in scores.items()}
    report["load_average_end"] = round(os.getloadavg()[0], 2)
    write(report, scores)


def write(report: dict, scores: dict) -> None:
    names = list(scores)
    first = scores[names[0]]
    lines = ["# Late interaction against single-vector training (synthetic suite, tiny:mini, CPU)", "",
             f"Date {report['date']}, {report['machine']}, load average {report['load_average_start']} -> "
             f"{report['load_average_end']}. Both models: the demo's stage 1 (`recipes/demo.yaml`, pair tasks of the "
             f"synthetic training split, batch 32, lr 3e-4, cosine), {report['steps']} steps from the same random "
             f"tiny:mini; late interaction: InfoNCE over MaxSim (query-length normalised), temperature "
             f"{LATE_INTERACTION_TEMPERATURE}, a {report['multi_vector_dim']}-d token head.", "",
             "Command: `python benchmarks/late_interaction.py --steps "
             f"{report['steps']} --multi-vector-dim {report['multi_vector_dim']}`", "",
             "| task | chance | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    chance = first.get("chance", {})
    for task in first["scores"]:
        lines.append(f"| {task} | {chance.get(task, float('nan')):.1f} | "
                     + " | ".join(f"{scores[n]['scores'][task]:.1f}" for n in names) + " |")
    for group in first["groups"]:
        lines.append(f"| *{group}* | | " + " | ".join(f"{scores[n]['groups'][group]:.1f}" for n in names) + " |")
    lines.append("| **overall** | | " + " | ".join(f"**{scores[n]['overall']:.1f}**" for n in names) + " |")
    lines += ["", "Seconds: " + ", ".join(f"{name} " + " + ".join(f"{k.split('_')[0]} {v}" for k, v in run.items())
                                          for name, run in report["runs"].items())]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "late_interaction_cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "late_interaction_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
