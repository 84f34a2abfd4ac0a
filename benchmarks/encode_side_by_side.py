"""`encode_throughput.py --side-by-side`: uniembed's `Embedder.encode` against a plain transformers pipeline of the
same family, on the same checkpoint and items, each side in its own process, rounds alternating.

- Checkpoint: `tiny:small` (Qwen2-VL family) saved to disk under the library defaults of a plain checkpoint
  (chat template, `<|endoftext|>` appended, last-token pooling, causal attention, M-RoPE, left padding), pixel
  bounds 3,136..1,003,520 (4..1280 tokens of 28 px), max_length 4096 (nothing truncated), no pre-resize: the profile a plain transformers pipeline
  reproduces, so the vectors must agree (checked).
- Items: 320, written to disk once: 107 texts, 107 JPEG images, 106 text+image pairs; image sides 160-800 px.
- Baseline: `AutoProcessor` when it loads; in a venv without torchvision it does not (transformers 5 builds the
  Qwen2-VL video processor, which needs torchvision), and the baseline is then what `Qwen2VLProcessor.__call__`
  does, written out: `Qwen2VLImageProcessorPil` for pixels and grids, each `<|image_pad|>` expanded to the grid's
  token count, the tokenizer with left padding, `mm_token_type_ids` 1 on image tokens. Messages go through the checkpoint's own chat template
  (`apply_chat_template`), the model class is `Qwen2VLForConditionalGeneration`, pooled vector =
  `model.model(...).last_hidden_state[:, -1]`, L2-normalised; items in input order, batches of 16, images decoded
  with PIL in the loop. The result records which image-processor backend the baseline used.
- Both sides: torch 1 thread (`torch.set_num_threads`), model load excluded, one warm-up batch per modality.
  uniembed prepares the next batches in its background threads (`Embedder.iter_batches`), as `encode` always does.
- `--before-src DIR` adds a third side, "before": uniembed imported from another checkout's src/ (e.g. a
  `git worktree` of the commit before a change), for before/after figures from the same run.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODALITIES = ("texts", "images", "pairs")
COUNTS = {"texts": 107, "images": 107, "pairs": 106}
WORDS = ("red green blue yellow purple circle square triangle left right above below large small striped dotted "
         "photo drawing of a the with next to near far bright dark").split()
MIN_PIXELS, MAX_PIXELS = 56 * 56, 1280 * 28 * 28


def write_fixture(workdir: Path) -> None:
    """The checkpoint and the 320 items (items.json lists each modality's items; images are JPEG files)."""
    from PIL import Image, ImageDraw

    from uniembed import Embedder

    if (workdir / "items.json").exists():
        return
    Embedder.tiny(size="small", min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, max_length=4096).save_pretrained(workdir / "model")
    rng = np.random.default_rng(0)
    (workdir / "images").mkdir(parents=True, exist_ok=True)
    items: dict[str, list[dict]] = {}
    for modality in MODALITIES:
        rows = []
        for i in range(COUNTS[modality]):
            row: dict = {}
            if modality != "images":
                row["text"] = " ".join(rng.choice(WORDS, int(rng.integers(4, 60))))
            if modality != "texts":
                width, height = (int(v) for v in rng.integers(160, 801, 2))
                image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 256, 3)))
                draw = ImageDraw.Draw(image)
                for _ in range(6):
                    x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
                    draw.ellipse((x, y, x + width // 4, y + height // 4), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
                path = workdir / "images" / f"{modality}-{i}.jpg"
                image.save(path, quality=90)
                row["image"] = str(path)
            rows.append(row)
        items[modality] = rows
    (workdir / "items.json").write_text(json.dumps(items))


class PlainPipeline:
    """The baseline: transformers' processor (or what it does, see the module docstring) and model class."""

    def __init__(self, directory: Path) -> None:
        from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration

        self.model = Qwen2VLForConditionalGeneration.from_pretrained(directory, attn_implementation="sdpa").eval()
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        try:
            from transformers import AutoProcessor

            self.processor = AutoProcessor.from_pretrained(directory)
            self.image_processor = self.processor.image_processor
            self.backend = f"AutoProcessor: {type(self.processor).__name__}, {type(self.image_processor).__name__} " \
                           f"({type(self.image_processor).__mro__[1].__name__})"
        except (ImportError, AttributeError) as exc:  # no torchvision: the video processor cannot be built
            from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

            self.processor = None
            self.image_processor = Qwen2VLImageProcessorPil.from_pretrained(directory)
            self.backend = (f"AutoProcessor failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:120]}); "
                            "Qwen2VLImageProcessorPil + tokenizer, placeholder expansion as Qwen2VLProcessor")
        self.template = (directory / "chat_template.jinja").read_text()
        self.merge = int(self.image_processor.merge_size)

    def inputs(self, rows: list[dict]) -> dict:
        from PIL import Image

        images = [Image.open(row["image"]).convert("RGB") for row in rows if "image" in row]
        texts = []
        for row in rows:
            content = ([{"type": "image"}] if "image" in row else []) + \
                ([{"type": "text", "text": row["text"]}] if "text" in row else [])
            texts.append(self.tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                            chat_template=self.template))
        if self.processor is not None:
            return self.processor(text=texts, images=images or None, padding=True, padding_side="left",
                                  return_tensors="pt")
        pixels = self.image_processor(images=images, return_tensors="pt") if images else {}
        grids = iter(pixels["image_grid_thw"].tolist()) if images else iter(())
        expanded = []
        for text in texts:
            pieces = text.split("<|image_pad|>")
            out = pieces[0]
            for piece in pieces[1:]:
                out += "<|image_pad|>" * (int(np.prod(next(grids))) // self.merge ** 2) + piece
            expanded.append(out)
        batch = dict(self.tokenizer(expanded, padding=True, padding_side="left", return_tensors="pt"))
        batch["mm_token_type_ids"] = (batch["input_ids"] == self.model.config.image_token_id).long()  # 1 = image
        return {**batch, **dict(pixels)}

    def encode(self, rows: list[dict], batch_size: int) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                hidden = self.model.model(**self.inputs(rows[start: start + batch_size])).last_hidden_state[:, -1]
                out.append(torch.nn.functional.normalize(hidden.float(), dim=-1).numpy())
        return np.concatenate(out)


def worker(side: str, workdir: Path, batch_size: int, save_vectors: bool) -> dict:
    """One side, one process: load, warm up, time each modality; prints and returns seconds per modality."""
    import torch

    torch.set_num_threads(1)
    items = json.loads((workdir / "items.json").read_text())
    if side in ("uniembed", "before"):
        from uniembed import Embedder, Item

        model = Embedder.from_pretrained(workdir / "model")
        backend = f"uniembed from {Path(__import__('uniembed').__file__).parent.parent}"

        def encode(rows: list[dict]) -> np.ndarray:
            return model.encode([Item(**row) for row in rows], batch_size=batch_size)
    else:
        pipeline = PlainPipeline(workdir / "model")
        backend = pipeline.backend

        def encode(rows: list[dict]) -> np.ndarray:
            return pipeline.encode(rows, batch_size)
    seconds, vectors = {}, {}
    for modality in MODALITIES:
        encode(items[modality][:batch_size])  # warm-up
        start = time.perf_counter()
        vectors[modality] = encode(items[modality])
        seconds[modality] = time.perf_counter() - start
    if save_vectors:
        np.savez(workdir / f"vectors-{side}.npz", **vectors)
    return {"side": side, "seconds": seconds, "backend": backend}


def run_side(side: str, workdir: Path, batch_size: int, python: str, save_vectors: bool, before_src: str | None) -> dict:
    """One worker process; the side "before" is uniembed imported from `before_src` (an older checkout's src/)."""
    script = Path(__file__).with_name("encode_throughput.py")
    command = [python, str(script), "--worker", side, "--workdir", str(workdir), "--batch-size", str(batch_size)]
    command += ["--save-vectors"] if save_vectors else []
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    if side == "before":
        env["PYTHONPATH"] = str(before_src)
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if run.returncode:
        raise RuntimeError(f"{side} worker failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def side_by_side(workdir: Path, rounds: int, batch_size: int, python: str, out: Path,
                 before_src: str | None = None) -> dict:
    """Rounds of one process per side, the order rotated each round; medians, ratios and vector agreement."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_fixture(workdir)
    sides = ("transformers", "uniembed") + (("before",) if before_src else ())
    per_round: list[dict] = []
    backends: dict[str, str] = {}
    loads = [os.getloadavg()[0]]
    for index in range(rounds):
        order = sides[index % len(sides):] + sides[: index % len(sides)]
        record = {side: run_side(side, workdir, batch_size, python, index == 0, before_src) for side in order}
        loads.append(os.getloadavg()[0])
        backends = {side: record[side]["backend"] for side in sides}
        per_round.append({"first": order[0], **{side: record[side]["seconds"] for side in sides}})
        print(f"round {index + 1}: " + ", ".join(f"{side} {sum(record[side]['seconds'].values()):.1f} s" for side in order),
              flush=True)
    rates: dict[str, dict[str, float]] = {}
    for side in sides:
        rates[side] = {m: float(np.median([COUNTS[m] / r[side][m] for r in per_round])) for m in MODALITIES}
        rates[side]["overall"] = float(np.median([sum(COUNTS.values()) / sum(r[side].values()) for r in per_round]))
    ratios = {side: {key: round(rates[side][key] / rates["transformers"][key], 2) for key in rates[side]}
              for side in sides[1:]}
    if before_src:
        ratios["uniembed_over_before"] = {key: round(rates["uniembed"][key] / rates["before"][key], 2)
                                          for key in rates["uniembed"]}
    theirs = np.load(workdir / "vectors-transformers.npz")
    agreement = {}
    for side in sides[1:]:
        ours = np.load(workdir / f"vectors-{side}.npz")
        agreement[side] = {m: {"min_cosine": round(float((theirs[m] * ours[m]).sum(-1).min()), 6),
                               "max_abs_diff": float(np.abs(theirs[m] - ours[m]).max())} for m in MODALITIES}
    import torch
    import transformers

    payload = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), torch {torch.__version__}, "
                   f"transformers {transformers.__version__}, python {python}",
        "command": f"python benchmarks/encode_throughput.py --side-by-side --rounds {rounds} --batch-size {batch_size}"
                   + (f" --python {python}" if python != sys.executable else "")
                   + (f" --before-src {before_src}" if before_src else ""),
        "load_average_1m": {"start": round(loads[0], 2), "end": round(loads[-1], 2), "max": round(max(loads), 2)},
        "items": COUNTS, "batch_size": batch_size, "threads": 1,
        "baseline_backend": backends["transformers"], "uniembed_backend": backends["uniembed"],
        "items_per_s_median": {side: {k: round(v, 2) for k, v in r.items()} for side, r in rates.items()},
        "ratio_over_transformers": ratios,
        "vector_agreement": agreement,
        "rounds": per_round,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps({"items_per_s_median": payload["items_per_s_median"], "ratio": ratios,
                      "vector_agreement": agreement, "baseline_backend": payload["baseline_backend"]}, indent=1))
    return payload

