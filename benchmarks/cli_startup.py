"""Fixed costs of the CLI: wall time of whole `uniembed` processes that do (almost) no work.

- `--help` (imports only the verbs' argument parsers),
- `info --model tiny` (imports torch and transformers and builds the tiny model),
- a warm `eval` (every embedding already in the cache: what is left is start-up, reading and reporting),
- `train` of one step on the tiny model (start-up, set-up, one step, checkpoint and output).

Each command runs `--repeats` times; the fastest run is kept (the machine may be shared). Also records whether a
run printed third-party import chatter (DeepSpeed's "Setting accelerator to CPU", FAISS's AVX512 loader lines).
With `--trees before=/path/to/main/src after=src` the same commands alternate between source trees (PYTHONPATH),
run by run, so load from other jobs hits both alike. Writes benchmarks/results/cli_startup-<label>.json.

    .venv/bin/python benchmarks/cli_startup.py --label after [--repeats 3]
    .venv/bin/python benchmarks/cli_startup.py --label compare --trees main=/work/main/src branch=src
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CHATTER = ("Setting accelerator to CPU", "Loading faiss with AVX512", "Could not load library with AVX")


def timed(arguments: list[str], cwd: Path, src: str | None = None) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=str(Path(src).resolve())) if src else None
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "uniembed.cli.main", *arguments], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"uniembed {' '.join(arguments)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True, help="name of this measurement (e.g. before / after)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trees", nargs="+", default=[], metavar="NAME=SRC", help="source trees to alternate")
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.trees) or {args.label: None}
    from uniembed.data.synth.generate import generate
    from uniembed.demo import write_mixtures

    rows = {}
    with tempfile.TemporaryDirectory(prefix="uniembed-startup-") as tmp:
        work = Path(tmp)
        generate(work / "synth", size="tiny", seed=0, progress=False)
        mixture = write_mixtures(work / "synth", work / "mixtures")["stage2"]
        recipe = Path(__file__).resolve().parents[1] / "recipes" / "demo.yaml"
        eval_args = ["eval", "--model", "tiny", "--suite", "synthetic", "--data", str(work / "synth"),
                     "--cache", str(work / "cache")]
        timed(eval_args + ["--out", str(work / "eval-cold")], work)  # fills the cache
        commands = {
            "--help": lambda i: ["--help"],
            "info --model tiny": lambda i: ["info", "--model", "tiny"],
            "eval (warm cache, synthetic tiny suite)": lambda i: eval_args + ["--out", str(work / f"eval{i}")],
            "train (1 step, tiny)": lambda i: ["train", str(recipe), "--out", str(work / f"train{i}"), "--no-progress",
                                               "--set", "model=tiny", "--set", "stages.*.max_steps=1",
                                               "--set", f"stages.*.data={mixture}", "--set", "stages.*.batch_size=4"],
        }
        for name, make in commands.items():
            runs = {tree: [] for tree in trees}
            chatter: dict[str, set] = {tree: set() for tree in trees}
            for repeat in range(args.repeats):
                for tree, src in trees.items():
                    seconds, output = timed(make(f"{repeat}-{tree}"), work, src)
                    runs[tree].append(round(seconds, 2))
                    chatter[tree].update(c for c in CHATTER if c in output)
            for tree in trees:
                key = name if len(trees) == 1 else f"{name} [{tree}]"
                rows[key] = {"seconds_min": min(runs[tree]), "runs": runs[tree], "import_chatter": sorted(chatter[tree])}
                print(f"{key:55s} {min(runs[tree]):6.2f} s  {runs[tree]}  chatter: {sorted(chatter[tree]) or 'none'}",
                      flush=True)
    payload = {"date": datetime.date.today().isoformat(), "label": args.label,
               "machine": f"{platform.processor() or 'CPU'}, {os.cpu_count()} cores (shared with other jobs)",
               "load_average": round(os.getloadavg()[0], 2), "python": platform.python_version(),
               "command": "python benchmarks/cli_startup.py " + " ".join(sys.argv[1:]),
               "results": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"cli_startup-{args.label}.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
