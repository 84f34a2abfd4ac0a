"""Shortcut baselines on the synthetic benchmark: how far a model gets without understanding.

- bag of words (counts of words, cosine; a tie with the gold counts as a miss): SynParaphrase, and SynVQA
  with the question alone (modality-blind: it never looks at the image);
- raw pixels (cosine of 24 x 24 thumbnails): SynI2I and SynCIR (reference image vs candidates);
- crop lookup: SynGround candidates that occur pixel for pixel in the query's scene, one of them picked at
  random (the expected hit@1 of a model that finds where a crop comes from but cannot read the expression).
A well-built benchmark keeps the first two near chance on the tasks that target them; the third measures the
floor a grounding model must beat (every object of the scene is a candidate, so locating is not grounding).

Usage: .venv/bin/python benchmarks/synth_baselines.py DIR   (DIR from `uniembed synth --size small`)
Writes benchmarks/results/synth_baselines.json.
"""
from __future__ import annotations

import datetime
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image


def words(text: str) -> Counter:
    text = re.sub(r"<\|(image|video)_\d+\|>", " ", text)
    return Counter(re.findall(r"[a-z0-9]+", text.lower()))


def cosine_counts(a: Counter, b: Counter) -> float:
    dot = sum(a[k] * b[k] for k in a)
    norm = (sum(v * v for v in a.values()) * sum(v * v for v in b.values())) ** 0.5
    return dot / norm if norm else 0.0


def hit1(scores_per_row: list[list[float]]) -> float:
    """Gold is index 0; ties count as misses unless the gold is strictly best (conservative)."""
    return 100.0 * float(np.mean([s[0] > max(s[1:]) for s in scores_per_row]))


def pixels(path: Path) -> np.ndarray:
    vector = np.asarray(Image.open(path).convert("RGB").resize((24, 24)), dtype=np.float32).ravel()
    vector -= vector.mean()
    return vector / (np.linalg.norm(vector) + 1e-8)


def occurs_in(crop: np.ndarray, scene: np.ndarray) -> bool:
    """Whether `crop` is an exact window of `scene` (candidate offsets from the first row, then checked whole)."""
    height, width = crop.shape[:2]
    rows = np.lib.stride_tricks.sliding_window_view(scene, (1, width, 3))[:, :, 0, 0]  # (H, W-w+1, w, 3)
    tops, lefts = np.nonzero((rows[: scene.shape[0] - height + 1] == crop[0]).all(axis=(-1, -2)))
    return any(np.array_equal(scene[t:t + height, l:l + width], crop) for t, l in zip(tops, lefts))


def expected_hit1_of_lookup(rows: list[dict], root: Path) -> float:
    """Mean over queries of 1/k when the gold is among the k candidates found in the scene (else 0)."""
    load = lambda path: np.asarray(Image.open(root / path).convert("RGB"))
    hits = []
    for r in rows:
        scene = load(r["qry_img_path"])
        found = [occurs_in(load(c), scene) for c in r["tgt_img_path"]]
        hits.append(1.0 / sum(found) if found[0] else 0.0)
    return 100.0 * float(np.mean(hits))


def main(data: Path) -> dict:
    results = {}
    rows = pq.read_table(data / "text/SynParaphrase/test-00000-of-00001.parquet").to_pylist()
    results["SynParaphrase bag-of-words"] = hit1([[cosine_counts(words(r["qry_text"].split(": ", 1)[1]), words(c))
                                                   for c in r["tgt_text"]] for r in rows])
    rows = pq.read_table(data / "mmeb/SynVQA/test-00000-of-00001.parquet").to_pylist()  # question words vs answers
    results["SynVQA bag-of-words (question only, image ignored)"] = hit1(
        [[cosine_counts(words(r["qry_text"].split(": ", 1)[1]), words(c)) for c in r["tgt_text"]] for r in rows])
    root = data / "mmeb/images"
    for task in ("SynI2I", "SynCIR"):
        rows = pq.read_table(data / f"mmeb/{task}/test-00000-of-00001.parquet").to_pylist()
        scores = []
        for r in rows:
            q = pixels(root / r["qry_img_path"])
            scores.append([float(q @ pixels(root / c)) for c in r["tgt_img_path"]])
        results[f"{task} raw pixels"] = hit1(scores)
    rows = pq.read_table(data / "mmeb/SynGround/test-00000-of-00001.parquet").to_pylist()
    results["SynGround crop lookup (random among crops found in the scene)"] = expected_hit1_of_lookup(rows, root)
    chance = {t["name"]: t["chance_percent"] for t in json.loads((data / "metadata.json").read_text())["tasks"]}
    report = {"date": datetime.date.today().isoformat(), "machine": "2-core CPU, no GPU", "data": str(data),
              "hit@1 percent": {k: round(v, 2) for k, v in results.items()},
              "chance percent": {k.split()[0]: chance[k.split()[0]] for k in results}}
    out = Path(__file__).parent / "results" / "synth_baselines.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1])), indent=2))
