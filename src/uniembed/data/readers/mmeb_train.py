"""MMEB-train: `<Subset>/original-00000-of-00001.parquet` with `qry`, `qry_image_path`, `pos_text`,
`pos_image_path` and optional `neg_text`, `neg_image_path` (image paths relative to the unzipped image root).
Video subsets add `qry_video_path`, `pos_video_path`, `neg_video_path` (frame folders or files, relative to
`video_root`, default the image root).

The hard negative is kept (the reference code dropped it). Instructions inline in `qry` / `pos_text`
("<|image_1|>\\nRepresent the given image for classification\\n") move to `Item.instruction`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...inputs import Item
from ..examples import TrainingExample
from .common import ReadReport, RowGuard, mmeb_item, read_rows, resolve_video, table_files

REQUIRED_COLUMNS = ("qry", "qry_image_path", "pos_text", "pos_image_path")


def read_mmeb_train(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    source: str | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    split_instructions: bool = True,
    max_rows: int | None = None,
    video_root: str | os.PathLike | None = None,
) -> list[TrainingExample]:
    """Training examples from one MMEB-train subset (a parquet file, or a folder of them).

    `source` defaults to the subset folder name. Without `image_root`, the first folder that holds the
    table's first image is used, tried in this order: `<MMEB-train>/image` (TIGER-AI-Lab/VLM2Vec@6e1e1d4
    experiments/public/train/train_image.yaml `image_dir: .../MMEB-train/image`), `<MMEB-train>/images`,
    `<MMEB-train>` (the older README's unzip target), then the subset folder; none holding it is an error
    listing them.
    """
    files = table_files(path)
    name = source or (Path(path).name if Path(path).is_dir() else Path(path).parent.name)
    examples: list[TrainingExample] = []
    for file in files:
        guard = RowGuard(file, skip_bad_rows, report)
        if report is None:
            report = guard.report
        rows = list(read_rows(file, REQUIRED_COLUMNS, guard))
        root = image_root if image_root is not None else default_image_root(file, rows)
        roots = (root, video_root if video_root is not None else root)
        for row_number, row in rows:
            if max_rows is not None and len(examples) >= max_rows:
                break
            example = guard.build(row_number, lambda: _example(row, roots, name, split_instructions))
            if example is not None:
                examples.append(example)
        guard.finish()
    return examples


def image_root_candidates(file: Path) -> list[Path]:
    """Where MMEB-train's image paths may be relative to, in the order tried (see `read_mmeb_train`)."""
    repo = file.parent.parent
    return [repo / "image", repo / "images", repo, file.parent]


def default_image_root(file: Path, rows: list[tuple[int, dict[str, Any]]]) -> Path:
    """The first candidate root holding the table's first image path (tables without images: the subset folder)."""
    first = next((row[column] for _, row in rows for column in ("qry_image_path", "pos_image_path", "neg_image_path")
                  if isinstance(row.get(column), str) and row[column].strip()), None)
    candidates = image_root_candidates(file)
    if first is None:
        return file.parent
    for root in candidates:
        if os.path.exists(os.path.join(root, first)):
            return root
    raise InputError(f"image '{first}' not found under any default image root; tried "
                     + ", ".join(f"'{c}'" for c in candidates), path=file,
                     fix="unzip MMEB-train's images (see docs/evaluation.md) or set image_root in the mixture YAML")


def _side(row: dict[str, Any], text_column: str, prefix: str, roots: tuple[Any, Any], split: bool) -> Item | None:
    """One side of a pair (query, positive or negative) from its text, image and optional video cells."""
    image_root, video_root = roots
    video = resolve_video(row.get(f"{prefix}_video_path"), video_root)  # absolute once resolved
    return mmeb_item(row.get(text_column), row.get(f"{prefix}_image_path"), image_root, split=split, video_path=video)


def _example(row: dict[str, Any], roots: tuple[Any, Any], source: str, split: bool) -> TrainingExample:
    query = _side(row, "qry", "qry", roots, split)
    if query is None:
        raise InputError("empty query (no qry text, qry_image_path or qry_video_path)")
    positive = _side(row, "pos_text", "pos", roots, split)
    if positive is None:
        raise InputError("empty positive (no pos_text, pos_image_path or pos_video_path)")
    negative = _side(row, "neg_text", "neg", roots, split)
    return TrainingExample(query=query, positives=[positive], negatives=[negative] if negative else [],
                           source=source)
