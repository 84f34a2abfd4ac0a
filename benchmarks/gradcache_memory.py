"""Peak memory and step time of one contrastive training step against the global batch size, with and without
GradCache, on a small transformer encoder on CPU.

Each (batch, mode) runs in a fresh subprocess so its peak resident memory is its own: the peak is the growth of
the process's max RSS during the first training step over what model and inputs already took. Step time is the
fastest of the following steps (the machine may be shared). Writes benchmarks/results/gradcache_memory_cpu.{json,md}.

    .venv/bin/python benchmarks/gradcache_memory.py            # full sweep, 16 ... 1024
    .venv/bin/python benchmarks/gradcache_memory.py --batches 16 64 --steps 1
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
BATCHES = [16, 32, 64, 128, 256, 512, 1024]
MODEL = dict(vocab=2000, dim=128, layers=2, heads=4, feedforward=512, dropout=0.1, sequence=32)


def build_encoder():
    import torch
    from torch import nn

    class SmallTextEncoder(nn.Module):
        """Token embeddings, a 2-layer transformer with dropout, mean pooling."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(MODEL["vocab"], MODEL["dim"])
            layer = nn.TransformerEncoderLayer(MODEL["dim"], MODEL["heads"], MODEL["feedforward"], MODEL["dropout"],
                                               batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, MODEL["layers"], enable_nested_tensor=False)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.encoder(self.embed(tokens)).mean(dim=1)

    return SmallTextEncoder()


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_one(batch: int, mode: str, chunk_size: int, steps: int, threads: int) -> dict:
    """One configuration in this (fresh) process."""
    import torch

    from uniembed.losses import GradCache, contrastive_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_encoder()
    queries = torch.randint(0, MODEL["vocab"], (batch, MODEL["sequence"]))
    candidates = torch.randint(0, MODEL["vocab"], (batch, MODEL["sequence"]))
    loss_fn = lambda q, c: contrastive_loss(q, c, temperature=0.05)  # noqa: E731
    step = GradCache([model, model], loss_fn, chunk_size if mode == "gradcache" else None)
    before = max_rss_mb()
    step.step(queries, candidates)
    peak = max_rss_mb() - before
    times = []
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        step.step(queries, candidates)
        times.append(time.perf_counter() - start)
    return dict(batch=batch, mode=mode, chunk_size=chunk_size if mode == "gradcache" else None,
                peak_step_memory_mb=round(peak, 1), baseline_rss_mb=round(before, 1),
                step_seconds=round(min(times), 3), threads=torch.get_num_threads(),
                load_average=round(os.getloadavg()[0], 1))


def run_sweep(batches: list[int], chunk_size: int, steps: int, threads: int) -> list[dict]:
    rows = []
    for batch in batches:
        for mode in ("plain", "gradcache"):
            command = [sys.executable, __file__, "--one", str(batch), mode, "--chunk-size", str(chunk_size),
                       "--steps", str(steps), "--threads", str(threads)]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            row = json.loads(output.strip().splitlines()[-1])
            print(f"batch {batch:5d} {mode:9s} peak +{row['peak_step_memory_mb']:8.1f} MB  "
                  f"{row['step_seconds']:7.3f} s/step", flush=True)
            rows.append(row)
    return rows


def write_results(rows: list[dict], chunk_size: int, command: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = dict(date="2026-11-22", machine="2-core CPU, no GPU", command=command, model=MODEL,
                  loss="contrastive_loss, temperature 0.05, in-batch negatives", chunk_size=chunk_size, rows=rows)
    (RESULTS / "gradcache_memory_cpu.json").write_text(json.dumps(report, indent=1) + "\n")

    by = {(r["batch"], r["mode"]): r for r in rows}
    batches = sorted({r["batch"] for r in rows})
    lines = [
        "# GradCache: peak memory and step time vs global batch (CPU)",
        "",
        f"Date 2026-11-22 · machine: 2-core CPU, no GPU · command: `{command}`",
        "",
        f"Model: token embedding + {MODEL['layers']}-layer transformer (dim {MODEL['dim']}, {MODEL['heads']} heads, "
        f"dropout {MODEL['dropout']}), {MODEL['sequence']} tokens per input, one query and one candidate per pair; "
        f"InfoNCE over in-batch negatives. GradCache chunk size {chunk_size}. Peak = growth of the process's max "
        "RSS during one training step (fresh process per row); time = fastest of the following steps.",
        "",
        f"Step times are indicative: the machine's 1-minute load average during the sweep was "
        f"{min(r['load_average'] for r in rows):.1f}-{max(r['load_average'] for r in rows):.1f} on 2 cores "
        "(other jobs were running); the memory columns do not depend on load.",
        "",
        "| global batch | peak MB, plain | peak MB, GradCache | s/step, plain | s/step, GradCache |",
        "|---:|---:|---:|---:|---:|",
    ]
    for batch in batches:
        plain, cached = by.get((batch, "plain")), by.get((batch, "gradcache"))
        lines.append(f"| {batch} | {plain['peak_step_memory_mb']:.0f} | {cached['peak_step_memory_mb']:.0f} | "
                     f"{plain['step_seconds']:.2f} | {cached['step_seconds']:.2f} |")
    first, last = batches[0], batches[-1]
    lines += [
        "",
        f"From batch {first} to {last}: plain peak grows "
        f"{by[(last, 'plain')]['peak_step_memory_mb'] / max(by[(first, 'plain')]['peak_step_memory_mb'], 1):.0f}x; "
        f"GradCache peak goes from {by[(first, 'gradcache')]['peak_step_memory_mb']:.0f} to "
        f"{by[(last, 'gradcache')]['peak_step_memory_mb']:.0f} MB (one chunk's activations plus the B x B "
        "similarity matrices and B x D embeddings of the loss). GradCache costs a second forward pass per chunk.",
        "",
    ]
    (RESULTS / "gradcache_memory_cpu.md").write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=BATCHES)
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after the measured first step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    parser.add_argument("--one", nargs=2, metavar=("BATCH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(int(args.one[0]), args.one[1], args.chunk_size, max(args.steps, 1), args.threads)))
        return 0
    rows = run_sweep(args.batches, args.chunk_size, args.steps, args.threads)
    write_results(rows, args.chunk_size, "python " + " ".join(["benchmarks/gradcache_memory.py", *sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
