"""Encode throughput: items per second for text, image and video items.

CPU (default): the tiny random models of each backbone family (Qwen2-VL, Qwen3-VL, LLaVA-OneVision). With
--gpu-2b on a CUDA machine: a Qwen2-VL-2B-sized random model in bf16. Writes
benchmarks/results/encode_throughput_<device>.json and prints a table.

    .venv/bin/python benchmarks/encode_throughput.py [--sizes tiny small] [--families qwen3_vl] [--gpu-2b]

--side-by-side: uniembed against a plain transformers pipeline of the same family (`encode_side_by_side.py`),
each side in its own process, alternating rounds; writes benchmarks/results/encode_side_by_side_cpu.json.

    .venv/bin/python benchmarks/encode_throughput.py --side-by-side [--rounds 5] [--python .venv-interop/bin/python]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from uniembed import Embedder

sys.path.insert(0, str(Path(__file__).parent))
from encode_side_by_side import side_by_side, worker

RESULTS = Path(__file__).parent / "results"


def make_items(kind: str, count: int, rng: np.random.Generator) -> list[dict]:
    colours = ["red", "green", "blue", "yellow", "purple"]
    items = []
    for i in range(count):
        text = f"a {colours[i % 5]} circle left of a {colours[(i + 2) % 5]} square, number {i}"
        if kind == "text":
            items.append({"text": text})
            continue
        frames = []
        for f in range(8 if kind == "video" else 1):
            image = Image.new("RGB", (224, 224), "white")
            x = int(rng.integers(0, 160)) + f * 4
            ImageDraw.Draw(image).ellipse((x, 80, x + 48, 128), fill=colours[i % 5])
            frames.append(image)
        items.append({"text": text, "image": frames[0]} if kind == "image" else {"text": text, "video": frames})
    return items


def measure(model: Embedder, items: list[dict], batch_size: int, repeats: int = 2) -> float:
    model.encode(items[: batch_size], batch_size=batch_size)  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.encode(items, batch_size=batch_size)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def qwen2vl_2b(device: str) -> Embedder:
    """A random model with Qwen2-VL-2B's geometry (1.5B LLM + 675M ViT) in bf16."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from uniembed.models.backbones.qwen2_vl import Qwen2VLBackbone
    from uniembed.models.backbones.qwen2_vl import build_image_processor
    from uniembed.models.tiny import SPECIAL_TOKENS, build_tokenizer

    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, rope_parameters={
                             "rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}),
        vision_config=dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration(config).to(torch.bfloat16).eval()
    backbone = Qwen2VLBackbone(model, tokenizer, build_image_processor(), "random-qwen2-vl-2b")
    return Embedder(backbone, Embedder.default_config(Qwen2VLBackbone).replace(max_pixels=256 * 28 * 28,
                                                                                video_max_pixels=64 * 28 * 28))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default=None, help="file name under benchmarks/results (default by device)")
    parser.add_argument("--families", nargs="+", default=["qwen2_vl", "qwen3_vl", "llava_onevision"])
    parser.add_argument("--gpu-2b", action="store_true", help="also measure a 2B-sized random model in bf16 on CUDA")
    parser.add_argument("--side-by-side", action="store_true", help="uniembed vs a plain transformers pipeline")
    parser.add_argument("--rounds", type=int, default=5, help="side-by-side rounds (each: one process per side)")
    parser.add_argument("--python", default=sys.executable, help="side-by-side: the interpreter both sides run in")
    parser.add_argument("--workdir", default="/tmp/uniembed-encode-side-by-side", help="side-by-side checkpoint + items")
    parser.add_argument("--before-src", default=None, help="side-by-side: also run uniembed from this src/ folder")
    parser.add_argument("--worker", choices=["uniembed", "transformers", "before"], help=argparse.SUPPRESS)
    parser.add_argument("--save-vectors", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.workdir), args.batch_size, args.save_vectors)))
        return
    if args.side_by_side:
        side_by_side(Path(args.workdir), args.rounds, args.batch_size, args.python,
                     RESULTS / (args.out or "encode_side_by_side_cpu.json"), args.before_src)
        return
    rng = np.random.default_rng(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    models = [(f"tiny:{family}:{size}", Embedder.tiny(size=size, family=family).to(device))
              for family in args.families for size in args.sizes]
    if args.gpu_2b:
        models.append(("qwen2-vl-2b-random-bf16", qwen2vl_2b(device)))
    rows = []
    for name, model in models:
        for kind in ("text", "image", "video"):
            items = make_items(kind, args.count, rng)
            rate = measure(model, items, args.batch_size)
            rows.append({"model": name, "parameters": model.num_parameters(), "kind": kind,
                         "items_per_s": round(rate, 2), "batch_size": args.batch_size, "count": args.count})
            print(f"{name:28s} {kind:6s} {rate:9.1f} items/s")
    machine = torch.cuda.get_device_name() if device == "cuda" else f"{platform.processor() or 'CPU'}, {torch.get_num_threads()} threads"
    payload = {"date": datetime.date.today().isoformat(), "device": device, "machine": machine,
               "torch": torch.__version__, "command": f"python benchmarks/encode_throughput.py --sizes {' '.join(args.sizes)} "
               f"--families {' '.join(args.families)} --count {args.count}", "results": rows,
               "load_average_1m": round(os.getloadavg()[0], 1),
               "notes": "images 224x224 (tiny Qwen2-VL: max 16 visual tokens of 28 px; tiny Qwen3-VL: 16 of 32 px; "
                        "tiny LLaVA-OneVision: AnyRes, up to 9 tiles of 32 px + base tile, 172 tokens; 2B: max 256); "
                        "video = 8 frames; text ~15 words"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / (args.out or f"encode_throughput_{device}.json")).write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
