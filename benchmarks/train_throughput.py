"""Training throughput and peak memory per recipe on the tiny model (CPU).

Each recipe runs in a fresh subprocess (so peak RSS is its own) for a fixed number of steps on the
synthetic benchmark; pairs/s is averaged over the steps after the first (warm-up) few.

    .venv/bin/python benchmarks/train_throughput.py [--steps 20] [--models tiny:small tiny:qwen3_vl:small]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource  # noqa: F401  (used by the child launcher)
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
# options a family needs whatever the recipe says (LLaVA-OneVision has 1-D RoPE only)
FAMILY_OVERRIDES = {"llava_onevision": ["embedding.positions=1d"]}


def run_recipe(name: str, model: str, steps: int, batch: int, data: Path, mixture: Path, work: Path) -> dict:
    run_dir = work / name
    overrides = [f"model={model}", "save_every=0", f"stages.*.max_steps={steps}", f"stages.*.batch_size={batch}",
                 "stages.*.epochs=null", f"stages.*.data={mixture}", "embedding.max_pixels=12544"]
    overrides += [o for family, extra in FAMILY_OVERRIDES.items() if f":{family}" in model for o in extra]
    arguments = ["train", str(RECIPES / f"{name}.yaml"), "--out", str(run_dir), "--no-progress"]
    arguments += [a for o in overrides for a in ("--set", o)]
    # the child reports its own peak RSS (RUSAGE_CHILDREN would be a running maximum over all recipes)
    launcher = ("import resource, sys\nfrom uniembed.cli.main import main\ncode = main(sys.argv[1:])\n"
                "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", launcher] + arguments, check=True, capture_output=True, text=True)
    peak_kib = int([line for line in done.stdout.splitlines() if line.startswith("PEAK_KIB")][-1].split()[1])
    log = [json.loads(line) for line in (run_dir / "logs" / "train.jsonl").read_text().splitlines()]
    stages = {}
    for stage in dict.fromkeys(e["stage"] for e in log):
        rows = [e for e in log if e["stage"] == stage]
        # pairs_per_s in the log is cumulative over the stage; the last entry covers every step
        stages[stage] = round(rows[-1]["pairs_per_s"], 2)
    return {"recipe": name, "model": model, "steps_per_stage": steps, "batch_size": batch,
            "pairs_per_s_by_stage": stages, "peak_rss_mib": round(peak_kib / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", nargs="+", default=["tiny:small"], help="model specs, e.g. tiny:qwen3_vl:mini")
    parser.add_argument("--out", default="train_throughput_cpu.json", help="file name under benchmarks/results")
    parser.add_argument("--recipes", nargs="+", default=["vlm2vec", "unite", "demo"])
    args = parser.parse_args()
    from uniembed.data.synth.generate import generate
    from uniembed.demo import write_mixtures

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate(work / "data", size="tiny", seed=0)
        mixture = write_mixtures(work / "data", work / "mixtures")["stage2"]
        for model in args.models:
            for name in args.recipes:
                row = run_recipe(name, model, args.steps, args.batch_size, work / "data", mixture,
                                 work / model.replace(":", "_"))
                rows.append(row)
                print(json.dumps(row))
    import torch

    payload = {"date": datetime.date.today().isoformat(), "device": "cpu",
               "machine": f"{platform.processor() or 'CPU'}, {torch.get_num_threads()} threads",
               "command": f"python benchmarks/train_throughput.py --steps {args.steps} --batch-size {args.batch_size} "
                          f"--models {' '.join(args.models)} --recipes {' '.join(args.recipes)}", "results": rows,
               "load_average_1m": round(os.getloadavg()[0], 1),
               "notes": "each recipe keeps its own options (LoRA/full, GradCache, gradient checkpointing, masks); "
                        "data: synthetic tiny split mixture of all tasks; images capped at 16 visual tokens (Qwen families; "
                        "LLaVA-OneVision tiles by its grid pinpoints instead)"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
