"""Real scans as a data set of one's own in the MMEB layout: scikit-learn's 8x8 handwritten digits.

`write_digits_mmeb` writes an MMEB-V1-layout classification task (each digit image ranks the ten label words,
gold first; `ROOT/NAME/test-00000-of-00001.parquet` with images under `ROOT/IMAGES_UNDER/digits/`), which
`uniembed eval --suite mmeb-v1 --datasets NAME` reads as a "custom" task. Used by the eval tests and by
benchmarks/compact.py. Without scikit-learn the ten digits are drawn with PIL instead (repeated).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

LABELS = [f"digit{n}" for n in range(10)]
INSTRUCTION = "<|image_1|>\nRepresent the given image for classification\n"  # MMEB-V1's classification prompt form


def digit_images(count: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """(the first `count` images as 8x8 uint8 arrays, their labels): scikit-learn's digits, else drawn with PIL."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        drawn = []
        for label in range(10):
            canvas = Image.new("L", (8, 8), 0)
            ImageDraw.Draw(canvas).text((1, -2), str(label), fill=255)
            drawn.append(np.asarray(canvas))
        return np.stack(drawn * (count // 10)), np.tile(np.arange(10), count // 10)
    data = load_digits()
    return (data.images[:count] * (255 / 16)).round().astype(np.uint8), data.target[:count]


def write_digits_mmeb(root: str | os.PathLike, name: str = "Digits", images_under: str = "eval_images",
                      images: np.ndarray | None = None, labels: np.ndarray | None = None) -> Path:
    """Write the task (default images: `digit_images()`); returns the parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if images is None or labels is None:
        images, labels = digit_images()
    root = Path(root)
    folder = root / images_under / "digits"
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list] = {"qry_text": [], "qry_img_path": [], "tgt_text": [], "tgt_img_path": []}
    for index, (pixels, label) in enumerate(zip(images, labels)):
        Image.fromarray(pixels, "L").save(folder / f"{index}.png")
        rows["qry_text"].append(INSTRUCTION)
        rows["qry_img_path"].append(f"digits/{index}.png")
        rows["tgt_text"].append([LABELS[label]] + [w for w in LABELS if w != LABELS[label]])
        rows["tgt_img_path"].append([""] * 10)
    (root / name).mkdir(parents=True, exist_ok=True)
    table = root / name / "test-00000-of-00001.parquet"
    pq.write_table(pa.table(rows), table)
    return table
