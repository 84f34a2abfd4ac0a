"""Ablations on the synthetic benchmark: the published recipes and their single options, several seeds.

Every row trains the demo's tiny model (recipes/demo.yaml: tiny:mini, full fine-tuning, CPU) for the same number
of steps, so rows differ only in what the row names:

- options: one stage-1 model per seed (UNITE's retrieval adaptation, symmetric InfoNCE on pair data), then
  stage 2 on every task with plain InfoNCE (in-batch negatives) plus ONE option: the modality mask, one hard
  negative per query, the false-negative filter, or hardness weights; or batches that mix sources (so target
  modalities), without and with the mask; `soup` is the uniform weight average
  of those stage-2 models (RzenEmbed's soup, fine-tunes of one base; see SOUP_OF);
- recipes at the same compute: `unite` (mask + hard negative, = the demo), `rzenembed` (hardness weights +
  false-negative filter + hard negative + per-task learnable temperature), `vlm2vec` (one stage on every
  task, tau 0.02, in-batch only), `unime` (text-only relational distillation from all-MiniLM-L6-v2, then
  false-negative filter + top-k hard negatives, tau 0.02), `umarvel` (progressive text -> pairs ->
  instruction stages, learnable temperature, the instruction stage on a negative mined by the pairs model;
  without the re-ranker distillation stages, which cost more than the rest of the row on CPU).

Usage: .venv/bin/python benchmarks/ablate.py [--seeds 0 1 2] [--jobs 2] [--out runs/ablate]
Writes benchmarks/results/ablation.json and ablation.md. Finished runs are kept: a killed ablation resumes.
"""
from __future__ import annotations

import argparse
import concurrent.futures as futures
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(ROOT / "src"))

from uniembed.demo import meta_task_table, read_metadata, write_mixtures  # noqa: E402

DEMO = yaml.safe_load((ROOT / "recipes" / "demo.yaml").read_text())
EMBEDDING = DEMO["embedding"]  # every row embeds like the demo model; rows differ in training only
OPTIONS: dict[str, dict[str, Any]] = {
    "plain InfoNCE": {},
    "+ modality mask": {"modality_mask": True},
    "+ hard negative": {"num_negatives": 1},
    "+ false-negative filter": {"false_negative_margin": 0.1},
    "+ hardness weights": {"hardness_alpha": 9.0},
    # `batching` is a stage option, not a loss option: batches that mix sources (and target modalities)
    "mixed batches": {"batching": "mixed"},
    "mixed batches + modality mask": {"batching": "mixed", "modality_mask": True},
}
# The modality mask only acts on candidates of another modality than the positive; with one source per batch
# (whose targets share a modality) "+ modality mask" repeats "plain InfoNCE" bit for bit (and `unite` repeats
# "+ hard negative"), so the soup leaves it out rather than count plain twice; mixed batching is its own axis.
SOUP_OF = ["plain InfoNCE", "+ hard negative", "+ false-negative filter", "+ hardness weights"]
RECIPE_LOSSES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {  # stage-2 loss, temperature
    "unite": ({"modality_mask": True, "num_negatives": 1}, {"init": 0.03}),
    "rzenembed": ({"hardness_alpha": 9.0, "false_negative_margin": 0.1, "num_negatives": 1},
                  {"init": 0.05, "per_task": True}),
}


@dataclass
class Schedule:
    stage1_steps: int
    stage2_steps: int
    batch_size: int = 32

    def stage(self, name: str, data: Path, steps: int, loss: dict, temperature: dict, lr: float, **extra) -> dict:
        return {"name": name, "data": str(data), "loss": {"kind": "contrastive", "num_negatives": 0, **loss},
                "temperature": temperature, "batch_size": self.batch_size, "lr": lr, "weight_decay": 0.01,
                "schedule": "cosine", "warmup_ratio": 0.05, "max_steps": steps, **extra}


@dataclass
class Job:
    key: str
    run: Callable[[], None]
    after: list[str] = field(default_factory=list)


class Ablation:
    def __init__(self, out: Path, data: Path, schedule: Schedule, threads: int) -> None:
        self.out, self.data, self.schedule, self.threads = out, data, schedule, threads
        self.mixtures = write_mixtures(data, out / "mixtures")

    # ---------------------------------------------------------------- running one thing
    def _call(self, arguments: list[str], log: Path) -> None:
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as handle:
            done = subprocess.run([sys.executable, "-m", "uniembed.cli.main", *arguments], stdout=handle,
                                  stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        if done.returncode:
            raise RuntimeError(f"`uniembed {' '.join(arguments)}` failed (exit {done.returncode}); see {log}")

    def train(self, run_dir: Path, recipe: dict) -> Path:
        if not (run_dir / "model").exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            recipe_file = run_dir.parent / f"{run_dir.name}.yaml"
            recipe_file.write_text(yaml.safe_dump(recipe, sort_keys=False))
            resume = ["--resume"] if (run_dir / "checkpoints").exists() else []
            self._call(["train", str(recipe_file), "--out", str(run_dir), "--no-progress", *resume],
                       run_dir.parent / f"{run_dir.name}.log")
        return (run_dir / "model").resolve()

    def evaluate(self, model: Path, eval_dir: Path) -> None:
        if not (eval_dir / "results.json").exists():
            self._call(["eval", "--model", str(model), "--suite", "synthetic", "--data", str(self.data),
                        "--out", str(eval_dir), "--batch-size", "64"], eval_dir.parent / "eval.log")

    def recipe(self, name: str, seed: int, model: str, stages: list[dict], embedding: dict | None = None) -> dict:
        return {"name": name, "model": model, "embedding": {**EMBEDDING, **(embedding or {})},
                "trainable": {"mode": "full", "freeze_vision": False}, "seed": seed, "save_every": 100,
                "stages": stages}

    # ---------------------------------------------------------------- the rows
    def base_model(self, seed: int) -> Path:
        return (self.out / f"seed{seed}" / "base" / "run" / "model").resolve()

    def stage1(self, seed: int) -> None:
        s = self.schedule
        stage = s.stage("retrieval_adaptation", self.mixtures["stage1"], s.stage1_steps, {"symmetric": True},
                        {"init": 0.05}, 3e-4)
        self.train(self.out / f"seed{seed}" / "base" / "run", self.recipe("base", seed, f"tiny:mini:{seed}", [stage]))

    def stage2(self, row: str, seed: int, loss: dict, temperature: dict) -> None:
        s = self.schedule
        loss = dict(loss)
        extra = {"batching": loss.pop("batching")} if "batching" in loss else {}
        stage = s.stage("instruction_tuning", self.mixtures["stage2"], s.stage2_steps, loss, temperature, 2e-4, **extra)
        row_dir = self.out / f"seed{seed}" / slug(row)
        model = self.train(row_dir / "run", self.recipe(slug(row), seed, str(self.base_model(seed)), [stage]))
        self.evaluate(model, row_dir / "eval")

    def soup(self, seed: int) -> None:
        row_dir = self.out / f"seed{seed}" / "soup"
        if not (row_dir / "model" / "uniembed.json").exists():
            inputs = [str((self.out / f"seed{seed}" / slug(row) / "run" / "model").resolve()) for row in SOUP_OF]
            self._call(["soup", "--inputs", *inputs, "--out", str(row_dir / "model")], row_dir / "soup.log")
        self.evaluate(row_dir / "model", row_dir / "eval")

    def from_scratch(self, row: str, seed: int) -> None:
        s, m = self.schedule, self.mixtures
        if row == "vlm2vec":
            stages = [s.stage("mmeb_train", m["stage2"], s.stage1_steps + s.stage2_steps, {}, {"init": 0.02}, 2e-4)]
        elif row == "unime":
            stages = [s.stage("textual_distillation", m["text"], s.stage1_steps,
                              {"kind": "relational", "teacher": "minilm"}, {"init": 0.02}, 3e-4,
                              trainable={"mode": "full", "text_only": True}),
                      s.stage("hard_negative_enhanced", m["stage2"], s.stage2_steps,
                              {"false_negative_margin": 0.1, "top_k": 8, "num_negatives": 1}, {"init": 0.02}, 2e-4,
                              from_previous=True)]
        elif row == "umarvel":
            third = max(1, s.stage1_steps // 3)
            learnable = {"init": 0.05, "learnable": True}
            stages = [s.stage("text_nli", m["text"], third, {"num_negatives": 1}, learnable, 3e-4),
                      s.stage("pairs", m["stage1"], s.stage1_steps - third, {"symmetric": True}, learnable, 3e-4,
                              from_previous=True),
                      s.stage("instruction", m["stage2"], s.stage2_steps, {"num_negatives": 1}, learnable, 2e-4,
                              from_previous=True, mine={"top": 50, "num_negatives": 1})]
        else:
            raise ValueError(row)
        row_dir = self.out / f"seed{seed}" / row
        model = self.train(row_dir / "run", self.recipe(row, seed, f"tiny:mini:{seed}", stages))
        self.evaluate(model, row_dir / "eval")

    def jobs(self, seeds: list[int], rows: list[str]) -> list[Job]:
        if "soup" in rows:  # the soup's ingredients run too
            rows = [row for row in SOUP_OF if row not in rows] + rows
        jobs: list[Job] = []
        for seed in seeds:
            base = f"{seed}/base"
            jobs.append(Job(base, lambda seed=seed: self.stage1(seed)))
            for row in rows:
                key = f"{seed}/{row}"
                if row in OPTIONS:
                    loss = OPTIONS[row]
                    jobs.append(Job(key, lambda r=row, s=seed, l=loss: self.stage2(r, s, l, {"init": 0.03}), [base]))
                elif row in RECIPE_LOSSES:
                    loss, temperature = RECIPE_LOSSES[row]
                    jobs.append(Job(key, lambda r=row, s=seed, l=loss, t=temperature: self.stage2(r, s, l, t), [base]))
                elif row == "soup":
                    jobs.append(Job(key, lambda s=seed: self.soup(s), [f"{seed}/{r}" for r in SOUP_OF]))
                else:
                    jobs.append(Job(key, lambda r=row, s=seed: self.from_scratch(r, s)))
        return jobs


def slug(row: str) -> str:
    return row.strip("+ ").replace(" ", "_").replace("-", "_").lower()


def run_jobs(jobs: list[Job], workers: int) -> list[str]:
    """Run jobs with at most `workers` at once, each after the jobs it names; returns the failures."""
    pending, done, failed, running = {j.key: j for j in jobs}, set(), [], {}
    with futures.ThreadPoolExecutor(workers) as pool:
        while pending or running:
            for key, job in list(pending.items()):
                if any(dep in failed for dep in job.after):
                    failed.append(key)
                    del pending[key]
                elif len(running) < workers and all(dep in done for dep in job.after):
                    running[pool.submit(job.run)] = key
                    del pending[key]
            if not running:
                failed += list(pending)  # waiting on jobs that were never scheduled
                break
            finished, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
            for future in finished:
                key = running.pop(future)
                try:
                    future.result()
                    done.add(key)
                    print(f"[{time.strftime('%H:%M:%S')}] done {key}", flush=True)
                except Exception as error:  # noqa: BLE001 - report and go on with the other rows
                    failed.append(key)
                    print(f"[{time.strftime('%H:%M:%S')}] FAILED {key}: {error}", flush=True)
    return failed


# ---------------------------------------------------------------- the table
def collect(out: Path, data: Path, seeds: list[int], rows: list[str]) -> dict[str, Any]:
    tasks = {task["name"]: task for task in read_metadata(data)["tasks"]}
    table: dict[str, Any] = {}
    chance: dict[str, float] = {}
    for row in rows:
        per_seed = {}
        for seed in seeds:
            results = out / f"seed{seed}" / slug(row) / "eval" / "results.json"
            if results.exists():
                payload = json.loads(results.read_text())
                metas = meta_task_table(payload, tasks)
                chance = {k: v["chance"] for k, v in metas.items()}
                per_seed[seed] = {**{k: v["score"] for k, v in metas.items()}, "overall": payload["overall"],
                                  "tasks": payload["scores"]}
        if not per_seed:
            continue
        columns = [k for k in next(iter(per_seed.values())) if k != "tasks"]
        table[row] = {"seeds": sorted(per_seed), "per_seed": per_seed,
                      "mean": {c: statistics.fmean(p[c] for p in per_seed.values()) for c in columns},
                      "std": {c: statistics.stdev([p[c] for p in per_seed.values()]) if len(per_seed) > 1 else 0.0
                              for c in columns}}
    baseline = table.get("plain InfoNCE", {}).get("per_seed", {})
    for row in table.values():  # paired with the same seed (same stage-1 model, same data order)
        deltas = [row["per_seed"][s]["overall"] - baseline[s]["overall"] for s in row["per_seed"] if s in baseline]
        row["delta_overall_vs_plain"] = {
            "mean": statistics.fmean(deltas) if deltas else None,
            "std": statistics.stdev(deltas) if len(deltas) > 1 else 0.0, "seeds": len(deltas)}
    return {"rows": table, "chance": chance}


def markdown(summary: dict[str, Any], header: dict[str, Any]) -> str:
    rows = summary["rows"]
    if not rows:
        return "no finished runs\n"
    columns = list(next(iter(rows.values()))["mean"])
    lines = [f"# Ablations on the synthetic benchmark ({header['date']}, {header['machine']})", "",
             f"`{header['command']}`; seeds {header['seeds']}; stage 1 {header['stage1_steps']} steps, stage 2 "
             f"{header['stage2_steps']} steps of batch {header['batch_size']}; mean ± std over seeds "
             "(meta-task = mean of its tasks' scores, percent).", "",
             "| row | " + " | ".join(columns) + " | overall - plain (paired) | n |",
             "|---" * (len(columns) + 3) + "|"]
    if summary.get("chance"):
        lines.append("| chance | " + " | ".join(f"{summary['chance'].get(c, float('nan')):.1f}" if c in
                                                 summary["chance"] else "" for c in columns) + " | | |")
    for name, row in rows.items():
        cells = [f"{row['mean'][c]:.1f} ± {row['std'][c]:.1f}" for c in columns]
        delta = row.get("delta_overall_vs_plain", {})
        paired = f"{delta['mean']:+.1f} ± {delta['std']:.1f}" if delta.get("mean") is not None else ""
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {paired} | {len(row['seeds'])} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "ablate")
    parser.add_argument("--data", type=Path, default=None, help="synthetic benchmark (default: OUT/data, generated)")
    parser.add_argument("--size", default="small", choices=["tiny", "small", "full"],
                        help="synthetic benchmark size when OUT/data is generated (tiny: a smoke test)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=list(OPTIONS) + ["soup"] + list(RECIPE_LOSSES)
                        + ["vlm2vec", "unime", "umarvel"])
    parser.add_argument("--stage1-steps", type=int, default=250)
    parser.add_argument("--stage2-steps", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: cores / jobs)")
    parser.add_argument("--test-queries", type=int, default=80, help="test queries per task when OUT/data is generated")
    parser.add_argument("--train-rows", type=int, default=200, help="rows per training subset when OUT/data is generated")
    parser.add_argument("--table-only", action="store_true", help="only rebuild the table from finished runs")
    args = parser.parse_args()

    data = (args.data or args.out / "data").resolve()
    if not (data / "metadata.json").exists():
        from uniembed.data.synth.generate import SIZES, SizeConfig, generate
        size = SIZES[args.size]
        generate(data, size=SizeConfig(min(args.test_queries, size.test_queries), min(args.train_rows, size.train_rows)),
                 seed=0)
    schedule = Schedule(args.stage1_steps, args.stage2_steps)
    start = time.perf_counter()
    failed: list[str] = []
    if not args.table_only:
        threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
        failed = run_jobs(Ablation(args.out, data, schedule, threads).jobs(args.seeds, args.rows), args.jobs)
    summary = collect(args.out, data, args.seeds, args.rows)
    header = {"date": datetime.date.today().isoformat(),
              "machine": f"{os.cpu_count()}-core CPU ({platform.machine()}), no GPU",
              "command": "python benchmarks/ablate.py " + " ".join(sys.argv[1:]), "seeds": args.seeds,
              "stage1_steps": schedule.stage1_steps, "stage2_steps": schedule.stage2_steps,
              "batch_size": schedule.batch_size, "wall_s": round(time.perf_counter() - start), "failed": failed}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ablation.json").write_text(json.dumps({**header, **summary}, indent=2) + "\n")
    (RESULTS / "ablation.md").write_text(markdown(summary, header))
    print(markdown(summary, header))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
