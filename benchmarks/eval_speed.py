"""Evaluation wall time as a user meets it: whole processes, side by side in one run, same model and data.

Each strategy is one fresh process timed from launch to exit (Python start, model construction, task reading,
encoding, scoring and, for `uniembed eval`, the reports):
- reference: the reference code's strategy (a worker mode of this script): de-duplication within each data
  set only, items in file order (queries, then candidates), fixed-size batches, no cache.
- cold: `uniembed eval` with an empty embedding cache (every distinct item of the suite once, by length).
- warm: the same command again (everything cached: the fixed costs of a re-run).
- model only: a process that imports uniembed and builds the model, nothing else (a worker mode of this
  script). Every strategy that encodes anything pays it, so it bounds what they can reach: the report states
  the fastest a cold run could be against the reference (model only plus nothing encoded) and the most that
  2 processes can gain when each one pays it (one-process seconds over model-only + the rest halved).
- cold x2 / warm x2: `uniembed eval --processes 2` (uniembed's own launcher, no torch in it) on a fresh cache,
  then again: the scaling from 1 to 2 processes. cold x2 torchrun / warm x2 torchrun: the same under
  `torchrun --nproc_per_node 2 -m uniembed.cli.main eval`, for the record (`--launchers` picks). Every process
  runs `--threads` threads (default 1, as torchrun sets OMP_NUM_THREADS=1 per rank), so 2 processes use twice
  the cores of one. Rounds (`--repeats`) run the strategies in alternating order.
All strategies must give the same scores (the script checks). Writes benchmarks/results/eval_speed.{json,md}
(`--suite mmeb-v1`: eval_speed_mmeb.{json,md}; with `--no-reference`: eval_speed_ranks.*, eval_speed_mmeb_ranks.*).

    .venv/bin/python benchmarks/eval_speed.py [--data DIR | --size tiny] [--model tiny] [--batch-size 16] [--repeats 1]
    .venv/bin/python benchmarks/eval_speed.py --suite mmeb-v1 --model tiny:small --ranks 1
    .venv/bin/python benchmarks/eval_speed.py --ranks 1 2 --no-reference --repeats 3     # 1 process vs 2 ranks

`--suite mmeb-v1` without `--data` writes the MMEB-V1-layout folder of `load_tasks_profile.py` (6 tasks,
1,500 images, 250 queries x 100 image candidates each); `--ranks 1` leaves out the 2-rank rows.
`--phases` runs every uniembed process through `eval_rank_phases.py` and adds CPU and wall seconds per phase and
rank to the report (start-up, join_world, model, tasks, own encode share, wait, exchange, score, reports): CPU
seconds are the figure to compare on a shared machine.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import resource
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def run_reference(model, tasks, batch_size: int) -> tuple[dict, int]:
    """The reference strategy in this process: (scores, items encoded)."""
    from uniembed.encoding import encode_distinct
    from uniembed.eval.runner import score_task

    scores, encoded = {}, 0
    for task in tasks:
        items = list(task.queries) + list(task.candidates)
        # file order, fixed batches, de-duplicated within this data set only, nothing kept between data sets
        table, stats = encode_distinct(model, items, batch_size=batch_size, by_length=False, chunk_batches=1,
                                       decode_workers=2, progress=False)
        encoded += stats.encoded
        scores[task.name] = score_task(task, table, examples_per_task=0).score
    return scores, encoded


def reference_worker(args: argparse.Namespace) -> None:
    from uniembed.eval.suites import SuiteOptions, get_suite
    from uniembed import Embedder

    model = Embedder.from_pretrained(args.model)
    if args.worker == "model-only":  # the start-up every encoding strategy pays: nothing more
        return
    tasks = get_suite(args.suite).load_tasks(args.data, SuiteOptions())
    scores, encoded = run_reference(model, tasks, args.batch_size)
    Path(args.worker_out).write_text(json.dumps({"scores": {k: round(v, 2) for k, v in scores.items()},
                                                 "encoded": encoded}))


CHILD_CPU: dict[str, list[float]] = {}  # strategy -> CPU seconds of its processes (launcher and ranks together)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict, name: str = "") -> float:
    """Wall seconds of one process tree from launch to exit (its CPU seconds go to CHILD_CPU[name])."""
    start, cpu = time.perf_counter(), children_cpu()
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{run.stderr[-3000:]}")
    CHILD_CPU.setdefault(name, []).append(children_cpu() - cpu)
    return seconds


def eval_command(args: argparse.Namespace, data: Path, out: Path, ranks: int, launcher: str = "processes") -> list[str]:
    """One `uniembed eval` run: one process, `--processes N` (uniembed's own launcher) or torchrun."""
    entry = [str(Path(__file__).parent / "eval_rank_phases.py")] if args.phases else ["-m", "uniembed.cli.main"]
    verb = [*entry, "eval", "--model", args.model, "--suite", args.suite, "--data", str(data),
            "--out", str(out), "--batch-size", str(args.batch_size), "--device", "cpu"]
    if ranks == 1:
        return [sys.executable, *verb]
    if launcher == "processes":
        return [sys.executable, *verb, "--processes", str(ranks)]
    from uniembed.launch import free_port

    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_addr", "127.0.0.1",
            "--master_port", str(free_port()), *verb]


def eval_result(out: Path) -> tuple[dict, int]:
    payload = json.loads((out / "results.json").read_text())
    return {name: round(score, 2) for name, score in payload["scores"].items()}, payload["encoding"]["encoded"]


PHASE_ROWS = [("start-up (interpreter, CLI imports)", None), ("join_world (torch.distributed, gloo)", "join_world"),
              ("build model", "build_model"), ("load tasks", "load_tasks"),
              ("encode own share", ("encode_own_share", "encode_local")), ("wait for other ranks", "wait_for_ranks"),
              ("exchange (read parts, cache)", "exchange"), ("score", "score"), ("reports", "write_reports")]


def column(entry: dict) -> str:
    """r0, r1, ... or `launcher` (a warm `--processes` run scored by the launcher alone, no rank started)."""
    return "launcher" if entry.get("launcher") else f"r{entry['rank']}"


def phase_lines(phases: dict[str, list[dict]]) -> list[str]:
    """Markdown: CPU seconds (wall in brackets) per phase and rank, from eval_rank_phases.py's files."""
    columns = [(name, entry) for name, ranks in phases.items() for entry in ranks]
    lines = ["", "Per phase and rank, CPU seconds of the process (all its threads), wall seconds in brackets "
             "(`--phases`, last round; phases that nest, like a model built inside encoding, are counted in both):", "",
             "| phase | " + " | ".join(f"{name} {column(entry)}" for name, entry in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for label, key in PHASE_ROWS:
        cells = []
        for _, entry in columns:
            found = entry["phases"]
            if key is None:
                value = entry["start_up"]
            elif key == "exchange":  # encoding's own time beyond the share and the wait: parts, cache, table
                total = found.get("encode_distinct_all", {"cpu": 0.0, "wall": 0.0})
                inner = [found[k] for k in ("encode_own_share", "encode_local", "wait_for_ranks") if k in found]
                value = {"cpu": total["cpu"] - sum(v["cpu"] for v in inner),
                         "wall": total["wall"] - sum(v["wall"] for v in inner)}
            else:
                value = next((found[k] for k in ((key,) if isinstance(key, str) else key) if k in found), None)
            cells.append("-" if value is None else f"{value['cpu']:.2f} ({value['wall']:.1f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| **process total** | " + " | ".join(f"**{e['total']['cpu']:.2f}** ({e['total']['wall']:.1f})"
                                                       for _, e in columns) + " |")
    threads = {f"{name} {column(e)}": e["torch_threads"] for name, e in columns}
    lines += ["", "torch threads per process (intra-op, inter-op): "
              + ", ".join(f"{k}: {v['intra_op']}/{v['inter_op']}" for k, v in threads.items() if v), ""]
    for suffix in (" x2", " x2 torchrun"):
        for name in ("cold", "warm"):
            if name in phases and name + suffix in phases:
                one = phases[name][0]["total"]["cpu"]
                slowest = max(entry["total"]["cpu"] for entry in phases[name + suffix])
                lines.append(f"- {name}{suffix}: one process {one:.2f} CPU s; the slower of 2 ranks {slowest:.2f} CPU s: "
                             f"{one / slowest:.2f}x if each rank had a core of its own (the launcher not counted)")
    return lines


def strategies(args: argparse.Namespace) -> list[tuple[int, str, str]]:
    """(processes, launcher, row suffix) of the uniembed rows: one process, `--processes 2`, torchrun."""
    rows = [(1, "processes", "")] if 1 in args.ranks else []
    if 2 in args.ranks:
        rows += [(2, launcher, " x2" if launcher == "processes" else " x2 torchrun") for launcher in args.launchers]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="synthetic benchmark folder (default: generate one of --size)")
    parser.add_argument("--suite", default="synthetic", choices=("synthetic", "mmeb-v1"))
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], choices=(1, 2),
                        help="process counts of the uniembed rows")
    parser.add_argument("--launchers", nargs="+", default=["processes", "torchrun"], choices=("processes", "torchrun"),
                        help="how the 2-rank rows start their ranks: `uniembed eval --processes 2` (row `x2`) and/or "
                             "torchrun (row `x2 torchrun`)")
    parser.add_argument("--no-reference", action="store_true",
                        help="leave out the reference strategy (scores are then compared with the one-process cold run)")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--model", default="tiny", help="model spec for uniembed.Embedder.from_pretrained")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of all strategies, in alternating order (the "
                                                               "fastest and the median of each are reported)")
    parser.add_argument("--threads", type=int, default=1, help="threads per process, every strategy (default 1: one "
                                                               "core per process, as a rank has one device)")
    parser.add_argument("--phases", action="store_true",
                        help="run each uniembed process through eval_rank_phases.py: CPU and wall seconds per phase "
                             "and rank in the report (the figure to compare on a shared machine)")
    parser.add_argument("--worker", choices=("reference", "model-only"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return reference_worker(args)

    work = Path(tempfile.mkdtemp(prefix="uniembed-eval-speed-"))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))  # as torchrun sets it for each rank
    rows = strategies(args)
    try:
        data = Path(args.data) if args.data else work / "synth"
        if not args.data and args.suite == "mmeb-v1":
            sys.path.insert(0, str(Path(__file__).parent))
            from load_tasks_profile import write_folder

            data = work / "mmeb"
            write_folder(data, images=1500, queries=250, candidates=100)
        elif not args.data:
            from uniembed.data.synth.generate import generate

            generate(data, size=args.size, seed=0, progress=False)
        runs: dict[str, list[float]] = {}
        outcome: dict[str, tuple[dict, int]] = {}
        phases: dict[str, list[dict]] = {}
        loads = [os.getloadavg()[0]]
        for repeat in range(args.repeats):
            if not args.no_reference:
                worker_out = work / f"reference-{repeat}.json"
                seconds = timed([sys.executable, __file__, "--worker", "reference", "--suite", args.suite, "--data",
                                 str(data), "--model", args.model, "--batch-size", str(args.batch_size), "--worker-out",
                                 str(worker_out)], env, "reference")
                runs.setdefault("reference", []).append(seconds)
                result = json.loads(worker_out.read_text())
                outcome["reference"] = (result["scores"], result["encoded"])
            runs.setdefault("model only", []).append(timed(
                [sys.executable, __file__, "--worker", "model-only", "--model", args.model], env, "model only"))
            for ranks, launcher, suffix in (rows if repeat % 2 == 0 else rows[::-1]):  # alternate the order
                out = work / f"eval-{ranks}{launcher}-{repeat}"
                for name in ("cold", "warm"):  # the second run finds the first one's cache
                    phase_dir = work / f"phases-{name}{suffix}-{repeat}".replace(" ", "")
                    run_env = dict(env, UNIEMBED_PHASES_DIR=str(phase_dir))
                    runs.setdefault(name + suffix, []).append(timed(eval_command(args, data, out, ranks, launcher),
                                                                    run_env, name + suffix))
                    outcome[name + suffix] = eval_result(out)
                    if args.phases:  # the last round's per-rank breakdown
                        found = [phase_dir / f"rank{rank}.json" for rank in range(ranks)]
                        found = [path for path in found if path.exists()] or [phase_dir / "launcher.json"]
                        phases[name + suffix] = [json.loads(path.read_text()) for path in found]  # launcher: warm
            loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(args, runs, outcome, phases, loads)


def start_up_bounds(best: dict[str, float]) -> dict[str, float]:
    """Ceilings the `model only` start-up puts on the ratios the report gives (empty without that row)."""
    floor = best.get("model only")
    if floor is None:
        return {}
    bounds = {}
    if "reference" in best:
        bounds["reference_over_cold_at_most"] = round(best["reference"] / floor, 2)
    if "cold" in best and "cold x2" in best:
        bounds["cold_x2_at_most"] = round(best["cold"] / (floor + (best["cold"] - floor) / 2), 2)
    return bounds


def write_report(args: argparse.Namespace, runs: dict[str, list[float]], outcome: dict[str, tuple[dict, int]],
                 phases: dict[str, list[dict]], loads: list[float]) -> None:
    best = {name: min(values) for name, values in runs.items()}
    median = {name: statistics.median(values) for name, values in runs.items()}
    baseline = "reference" if "reference" in outcome else "cold"
    reference_scores = outcome[baseline][0]
    differences = {name: max(abs(scores[task] - reference_scores[task]) for task in reference_scores)
                   for name, (scores, _) in outcome.items()}
    cores = os.cpu_count()
    scaling = {f"{name}{suffix}": {"best": round(best[name] / best[name + suffix], 2),
                                   "median": round(median[name] / median[name + suffix], 2),
                                   "per_round": [round(one / two, 2) for one, two in zip(runs[name], runs[name + suffix])]}
               for suffix in (" x2", " x2 torchrun") for name in ("cold", "warm") if name + suffix in best and name in best}
    report = {
        "date": datetime.date.today().isoformat(), "machine": f"{cores}-core CPU, no GPU",
        "python": platform.python_version(),
        "command": "python benchmarks/eval_speed.py " + " ".join(
            f"--{k.replace('_', '-')}" + ("" if v is True else f" {' '.join(map(str, v)) if isinstance(v, list) else v}")
            for k, v in vars(args).items() if v not in (None, False) and not k.startswith("worker")),
        "model": args.model, "suite": args.suite, "load_average_per_round": [round(v, 2) for v in loads],
        "data": args.data or (f"uniembed synth --size {args.size} --seed 0" if args.suite == "synthetic" else
                              "load_tasks_profile.write_folder(images=1500, queries=250, candidates=100)"),
        "batch_size": args.batch_size, "repeats": args.repeats,
        "seconds": {name: round(value, 2) for name, value in best.items()},
        "median_seconds": {name: round(value, 2) for name, value in median.items()},
        "all_runs_seconds": {name: [round(v, 2) for v in values] for name, values in runs.items()},
        "process_tree_cpu_seconds": {name: [round(v, 2) for v in values] for name, values in CHILD_CPU.items()},
        "items_encoded": {name: encoded for name, (_, encoded) in outcome.items()},
        "reference_over": ({name: round(best["reference"] / value, 2) for name, value in best.items()}
                           if "reference" in best else None),
        "scaling_1_to_2_processes": scaling or None,
        f"max_score_difference_vs_{baseline}": {name: round(value, 4) for name, value in differences.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    stem = ("eval_speed" if args.suite == "synthetic" else "eval_speed_mmeb") + ("_ranks" if args.no_reference else "")
    lines = [f"# Evaluation speed ({args.suite} suite, whole processes)", "",
             f"Date {report['date']}, machine: {report['machine']} (load average "
             f"{', '.join(f'{v:.2f}' for v in loads)} at the start and after each round), model `{args.model}`, batch "
             f"size {args.batch_size}, {args.repeats} round(s), strategies in alternating order. Every strategy is one "
             "fresh process tree timed from launch to exit (start-up, model, tasks, encoding, scoring, reports), each "
             f"process with {args.threads} thread(s); the `x2` rows are `uniembed eval --processes 2` (uniembed's own "
             "launcher), the `x2 torchrun` rows `torchrun --nproc_per_node 2`.", "",
             f"Command: `{report['command']}`", "",
             f"| strategy | best s | median s | CPU s (tree, median) | items encoded | {baseline} / strategy (best) "
             f"| largest score difference vs {baseline} |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, value in best.items():
        cpu = statistics.median(CHILD_CPU[name]) if CHILD_CPU.get(name) else float("nan")
        encoded = report["items_encoded"].get(name, "-")
        difference = f"{differences[name]:.4f}" if name in differences else "-"
        lines.append(f"| {name} | {value:.1f} | {median[name]:.1f} | {cpu:.1f} | {encoded} | "
                     f"{best[baseline] / value:.2f}x | {difference} |")
    bounds = start_up_bounds(best)
    if bounds:
        report["start_up_bounds"] = bounds
        lines += ["", "What start-up leaves reachable (every strategy that encodes builds the model: `model only`):", ""]
        if "reference_over_cold_at_most" in bounds:
            lines.append(f"- a cold run against the reference: at most {bounds['reference_over_cold_at_most']}x "
                         f"(reference {best['reference']:.1f} s / model only {best['model only']:.1f} s, as if "
                         "nothing were encoded)")
        if "cold_x2_at_most" in bounds:
            lines.append(f"- 2 processes against 1, each paying the model-only start-up: at most "
                         f"{bounds['cold_x2_at_most']}x (cold {best['cold']:.1f} s / (model only "
                         f"{best['model only']:.1f} s + the rest halved), with no launcher, exchange or contention)")
    if scaling:
        lines += ["", "Scaling from 1 to 2 processes (one-process seconds / 2-rank seconds; each process is one thread, "
                  f"so 2 ranks use the {cores} cores):", ""]
        lines += [f"- {name}: best {value['best']}x, median {value['median']}x, per round "
                  f"{', '.join(f'{v}x' for v in value['per_round'])}" for name, value in scaling.items()]
    if phases:
        report["phases"] = phases
        lines += phase_lines(phases)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
