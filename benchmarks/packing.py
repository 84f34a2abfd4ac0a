"""Sequence packing on CPU: tokens/s and items/s of the language-model forward with and without packing.

Three ways to run the same batches, measured in alternating rounds (best round kept):
- `padded-4d`: padded rows with uniembed's explicit 4-D float mask (how every batch ran before issue 26);
- `padded`:    padded rows with the cheapest exact mask (2-D for causal sdpa, transformers builds its own);
- `packed`:    `packing: on` (several items per row, block-diagonal 4-D mask, positions restarting per item).
Two workloads: `encode` (no grad, items length-sorted into batches as `Embedder.encode` does) and `train`
(forward + backward of `EmbeddingModule` on unsorted batches, as a training step without length grouping).
Tokens count real (unpadded) tokens. Writes benchmarks/results/packing_cpu.{json,md}.

    PYTHONPATH=src .venv/bin/python benchmarks/packing.py [--model tiny:small] [--rounds 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from uniembed import Embedder, Item
from uniembed.models.backbones import packing
from uniembed.models.backbones.base import attention_bias

RESULTS = Path(__file__).parent / "results"
WORDS = "red green blue circle square left right of a the small large shape scene picture".split()


def make_items(kind: str, count: int, rng: np.random.Generator) -> list[Item]:
    """Texts of very different lengths (short queries and long passages, as a retrieval batch), or images of
    different sizes (from 4 to 16 visual tokens at the tiny models' pixel bounds) with a short caption."""
    items = []
    for i in range(count):
        words = int(rng.integers(3, 12)) if i % 2 else int(rng.integers(30, 120))
        text = " ".join(rng.choice(WORDS, size=words))
        if kind == "text":
            items.append(Item(text=text))
            continue
        side = int(rng.choice([56, 84, 112]))
        image = Image.new("RGB", (side, int(rng.choice([56, 112]))), "white")
        ImageDraw.Draw(image).ellipse((4, 4, side // 2, side // 2), fill=WORDS[i % 3])
        items.append(Item(text=" ".join(rng.choice(WORDS, size=4)), image=image))
    return items


def variant(model: Embedder, mode: str) -> Embedder:
    return Embedder(model.backbone, model.config.replace(packing="on" if mode == "packed" else "off"))


def run(model: Embedder, mode: str, workload: str, batches: list[dict[str, Any]]) -> float:
    original = packing.forward_mask
    if mode == "padded-4d":
        packing.forward_mask = lambda mask, attention, config, dtype: attention_bias(mask, attention, dtype)
    try:
        start = time.perf_counter()
        for batch in batches:
            if workload == "encode":
                with torch.no_grad():
                    model.module(batch)
            else:
                model.module(batch).sum().backward()
        return time.perf_counter() - start
    finally:
        packing.forward_mask = original


def collated(model: Embedder, items: list[Item], batch_size: int, workload: str) -> list[dict[str, Any]]:
    decoded = [model.decode(item, i) for i, item in enumerate(items)]
    if workload == "encode":  # as Embedder.encode: sorted by length, then cut into batches
        decoded.sort(key=lambda d: len(model.backbone.item_tokens(d, model.config)[0]))
    return [model.collate(decoded[i: i + batch_size]) for i in range(0, len(decoded), batch_size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:small")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="packing_cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = Embedder.from_pretrained(args.model)
    rows = []
    for kind in ("text", "image"):
        items = make_items(kind, args.count, np.random.default_rng(0))
        for workload in ("encode", "train"):
            models = {mode: variant(base, mode) for mode in ("padded-4d", "padded", "packed")}
            batches = collated(base, items, args.batch_size, workload)
            tokens = sum(int(b["attention_mask"].sum()) for b in batches)
            slots = sum(b["attention_mask"].numel() for b in batches)
            plans = [packing.plan_packing(b["attention_mask"], models["packed"].config, base.backbone.hf_model.config)
                     for b in batches]
            packed_slots = sum(p.rows * p.capacity for p in plans)
            best = dict.fromkeys(models, float("inf"))
            run(models["padded"], "padded", workload, batches[:1])  # warm-up
            for _ in range(args.rounds):
                for mode, model in models.items():
                    best[mode] = min(best[mode], run(model, mode, workload, batches))
            for mode, seconds in best.items():
                rows.append({"kind": kind, "workload": workload, "mode": mode, "seconds": round(seconds, 3),
                             "items_per_s": round(len(items) / seconds, 1), "tokens_per_s": round(tokens / seconds, 1),
                             "speedup_vs_padded_4d": round(best["padded-4d"] / seconds, 2),
                             "token_slots": packed_slots if mode == "packed" else slots, "real_tokens": tokens})
                print(json.dumps(rows[-1]), flush=True)
    payload = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"), "device": "cpu",
               "machine": f"{platform.processor() or 'CPU'}, {os.cpu_count()} cores, {args.threads} torch threads",
               "torch": torch.__version__, "model": args.model, "count": args.count, "batch_size": args.batch_size,
               "rounds": args.rounds, "load_average_1m_before_after": [LOAD_BEFORE, round(os.getloadavg()[0], 2)],
               "command": f"PYTHONPATH=src .venv/bin/python benchmarks/packing.py --model {args.model} "
                          f"--count {args.count} --batch-size {args.batch_size} --rounds {args.rounds} "
                          f"--threads {args.threads}",
               "results": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [f"# Sequence packing on CPU ({payload['date']})", "", f"Machine: {payload['machine']}; torch {torch.__version__}; "
             f"load average (1 min) before/after: {payload['load_average_1m_before_after']}.", "",
             f"Command: `{payload['command']}`", "",
             "| items | workload | mode | items/s | tokens/s | vs padded-4d | token slots (real tokens) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['kind']} | {r['workload']} | {r['mode']} | {r['items_per_s']} | {r['tokens_per_s']} | "
              f"{r['speedup_vs_padded_4d']}x | {r['token_slots']} ({r['real_tokens']}) |" for r in rows]
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")


LOAD_BEFORE = round(os.getloadavg()[0], 2)

if __name__ == "__main__":
    main()
