"""A deterministic fake encoder for evaluation tests: bag of words, with images read as colour words.

An image (or every frame of a video) embeds as the name of its dominant colour, so a red picture and the
text "red" get the same vector and the right answer of every fixture is known before running it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from uniembed.frames import FramePolicy
from uniembed.inputs import Item
from uniembed.media import load_image

DIM = 64
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "yellow": (230, 230, 20),
           "black": (0, 0, 0), "white": (255, 255, 255)}


def word_slot(word: str) -> int:
    return int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM


def colour_name(image: Image.Image) -> str:
    mean = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return min(COLOURS, key=lambda name: float(np.sum((np.asarray(COLOURS[name]) - mean) ** 2)))


def colour_image(path: Path, colour: str, size: int = 16) -> Path:
    Image.new("RGB", (size, size), COLOURS[colour]).save(path)
    return path

def one_task_eval_args(tmp_path: Path, embedder) -> list[str]:
    """`uniembed eval` arguments for `embedder` saved to tmp_path/model and a one-task synthetic-layout folder
    (a red image whose candidate texts are red / blue / green; chance 1/3), writing to tmp_path/out."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    embedder.save_pretrained(tmp_path / "model")
    (tmp_path / "data").mkdir()
    colour_image(tmp_path / "data" / "red.png", "red")
    folder = tmp_path / "data" / "tasks" / "t1"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"qry_text": ["<|image_1|>\nRepresent the given image\n"], "qry_img_path": ["red.png"],
                             "tgt_text": [["red", "blue", "green"]], "tgt_img_path": [["", "", ""]]}),
                   folder / "test-00000-of-00001.parquet")
    (tmp_path / "data" / "metadata.json").write_text(json.dumps({"tasks": [
        {"name": "t1", "layout": "mmeb", "path": "tasks/t1", "image_root": ".", "chance": 1 / 3}]}))
    return ["eval", "--model", str(tmp_path / "model"), "--suite", "synthetic", "--data", str(tmp_path / "data"),
            "--out", str(tmp_path / "out"), "--batch-size", "2"]


class FakeEncoder:
    """Counts what it encodes; `encode` returns L2-normalised float32 vectors."""

    model_id = "fake-colour-words"

    def __init__(self) -> None:
        self.encoded: list[Item] = []
        self.calls = 0

    def vector(self, item: Item) -> np.ndarray:
        v = np.zeros(DIM, dtype=np.float64)
        for word in (item.text or "").lower().replace(",", " ").split():
            v[word_slot(word)] += 1.0
        for source in item.image_sources:
            v[word_slot(colour_name(load_image(source)))] += 1.0
        if item.video is not None:
            for frame in item.load_video(FramePolicy(num_frames=2)):
                v[word_slot(colour_name(frame))] += 0.5
        if not v.any():
            v[0] = 1.0
        return (v / np.linalg.norm(v)).astype(np.float32)

    def encode(self, items, batch_size: int = 32) -> np.ndarray:
        self.calls += 1
        self.encoded.extend(items)
        return np.stack([self.vector(item) for item in items])
