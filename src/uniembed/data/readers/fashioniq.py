"""FashionIQ (composed image retrieval) as the official release unpacks (XiaoxiaoGuo/fashion-iq; read as
miccunifi/SEARLE@a9c314b src/datasets.py:57,73,85 does):

    DIR/captions/cap.<dress|shirt|toptee>.val.json   list of {"candidate", "target", "captions": [a, b]}
    DIR/image_splits/split.<category>.val.json        list of image names (the pool of that category)
    DIR/images/<name>.jpg (or .png)

Query = reference image + "<a> and <b>", each stripped of '.?, ' (SEARLE src/validate.py:46); R@10 and R@50
per category (validate.py:104-105); the suite's summary averages the categories.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask
from .release import Release, entry_fields, read_json

FASHIONIQ_CATEGORIES = ("dress", "shirt", "toptee")
FASHIONIQ = {c: Release(f"FashionIQ-{c}", ("FashionIQ", "fashionIQ_dataset", "fashion-iq"),
                        (f"captions/cap.{c}.val.json", f"image_splits/split.{c}.val.json"),
                        ("candidate", "target", "captions"), ("images",), instructions={"composed": None},
                        source="XiaoxiaoGuo/fashion-iq release (captions/, image_splits/, images/)")
             for c in FASHIONIQ_CATEGORIES}


def _fashion_image(image_dir: Path, name: str, where: Path, row: int | None) -> Path:
    for suffix in (".jpg", ".png"):  # SEARLE src/datasets.py:85 (.jpg); some downloads keep .png
        path = image_dir / f"{name}{suffix}"
        if path.is_file():
            return path
    raise InputError(f"image {name} (.jpg or .png) not found under {image_dir}", path=where, row=row)


def fashioniq_query_text(captions: Sequence[str]) -> str:
    """Two relative captions as SEARLE joins them (src/validate.py:46)."""
    return " and ".join(str(c).strip(".?, ") for c in captions)


def read_fashioniq(release: Release, folder: Path, image_dir: Path) -> list[EvalTask]:
    """One category's val task: reference image + two relative captions -> the target, over the category's pool."""
    caption_path, split_path = (folder / f for f in release.files)
    pool = [str(i) for i in read_json(split_path)]
    position = {name: i for i, name in enumerate(pool)}
    candidates = [Item(image=str(_fashion_image(image_dir, name, split_path, n))) for n, name in enumerate(pool, 1)]
    queries, qrels = [], []
    for n, row in enumerate(read_json(caption_path), 1):
        reference, target, captions = entry_fields(row, release.keys, caption_path, n)
        if str(target) not in position:
            raise InputError(f"target {target} is not in {split_path.name}", path=caption_path, row=n)
        queries.append(Item(text=fashioniq_query_text(captions),
                            image=str(_fashion_image(image_dir, str(reference), caption_path, n)),
                            instruction=release.instructions["composed"]))
        qrels.append({position[str(target)]: 1.0})
    return [EvalTask(release.name, queries, candidates, qrels, metric="hit@10", meta_task="composed retrieval",
                     modality_group="image", candidate_ids=pool, extra_metrics=("hit@50",))]
