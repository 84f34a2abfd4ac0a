"""A small training set in uniembed's JSONL format, built from drawn images (for training tests)."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square"]


def write_training_set(root: Path, count: int = 24) -> Path:
    """Image->caption, caption->image and text->text rows (mixed modalities); returns the mixture file."""
    root.mkdir(parents=True, exist_ok=True)
    rows_mm, rows_text = [], []
    for i in range(count):
        colour, shape = COLOURS[i % len(COLOURS)], SHAPES[(i // len(COLOURS)) % 2]
        image = Image.new("RGB", (56, 56), "white")
        box = (8 + i % 5, 8, 40 + i % 5, 40)
        (ImageDraw.Draw(image).ellipse if shape == "circle" else ImageDraw.Draw(image).rectangle)(box, fill=colour)
        image.save(root / f"img{i}.png")
        caption = f"a {colour} {shape} number {i}"
        wrong = f"a {COLOURS[(i + 1) % len(COLOURS)]} {shape} number {i}"
        if i % 2:
            rows_mm.append({"query": {"image": f"img{i}.png", "instruction": "Find the caption"}, "positive": caption,
                            "negatives": [wrong]})
        else:
            rows_mm.append({"query": caption, "positive": {"image": f"img{i}.png"}, "negatives": [wrong]})
        rows_text.append({"query": f"which {shape} is {colour}, item {i}", "positive": caption})
    (root / "mm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_mm))
    (root / "text.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_text))
    mixture = root / "mixture.yaml"
    mixture.write_text("sources:\n  - {name: mm, format: jsonl, path: mm.jsonl}\n"
                       "  - {name: text, format: jsonl, path: text.jsonl, weight: 0.5}\n")
    (root / "text_mixture.yaml").write_text("sources:\n  - {name: text, format: jsonl, path: text.jsonl}\n")
    return mixture
