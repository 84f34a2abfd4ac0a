"""MMEB-V1 evaluation tasks: `<Dataset>/test-00000-of-00001.parquet`, one row per query.

Columns `qry_text`, `qry_img_path`, `tgt_text` (list), `tgt_img_path` (list), image paths relative to the
image root ("" for none); the newer copy adds `qry_inst` and `tgt_inst` (str, or one per candidate).
Each query ranks only its own candidate list, gold at index 0, scored by hit@1. Candidates are
de-duplicated across the task, and `candidate_lists` index into that pool.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask
from .catalog import MMEB_V1_TASKS, lookup
from .common import ReadReport, RowGuard, as_text_list, mmeb_item, read_rows, table_files
from .pool import CandidatePool, hit_chance

REQUIRED_COLUMNS = ("qry_text", "qry_img_path", "tgt_text", "tgt_img_path")


def read_mmeb_v1(
    path: str | os.PathLike | list[Path],
    image_root: str | os.PathLike | None = None,
    *,
    name: str | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    split_instructions: bool = True,
    max_rows: int | None = None,
    target_instructions: bool = True,
) -> EvalTask:
    """One MMEB-V1 task from its parquet file, its data set folder, or a list of its files.

    `name` defaults to the data set folder name; `image_root` to the folder holding the data set folders.
    Meta-task and in/out-of-distribution come from the MMEB table when the name is known.
    `target_instructions=False` ignores `tgt_inst` (MMEB-V2's classification, QA and i2t parsers do).
    """
    files = [Path(p) for p in path] if isinstance(path, list) else table_files(path)
    path = Path(path) if not isinstance(path, list) else files[0]
    task_dir = path if path.is_dir() else path.parent
    name = name or task_dir.name
    root = image_root if image_root is not None else task_dir.parent
    pool = CandidatePool()
    cells: dict[tuple, Item] = {}  # candidate cells seen in this task: one Item (checked once) per distinct cell
    queries: list[Item] = []
    lists: list[list[int]] = []
    for file in files:
        guard = RowGuard(file, skip_bad_rows, report)
        report = guard.report
        for row_number, row in read_rows(file, REQUIRED_COLUMNS, guard):
            if max_rows is not None and len(queries) >= max_rows:
                break
            parsed = guard.build(row_number, lambda: _parse_row(row, root, split_instructions, target_instructions,
                                                                      cells))
            if parsed is not None:
                query, candidates = parsed
                queries.append(query)
                lists.append([pool.add(item) for item in candidates])
        guard.finish()
    return local_task(name, queries, pool, lists, MMEB_V1_TASKS, modality_group="image",
                      query_ids=[f"{name}:{i}" for i in range(len(queries))])


def local_task(name: str, queries: list[Item], pool: CandidatePool, lists: list[list[int]], catalog: dict,
               *, modality_group: str, query_ids: list[str] | None = None, meta_task: str = "") -> EvalTask:
    """An EvalTask ranking each query against its own list, gold at index 0, scored by hit@1."""
    if not queries:
        raise InputError(f"task '{name}' has no usable query rows", fix="check the file and the image root")
    info = lookup(catalog, name)
    return EvalTask(
        name=name,
        queries=queries,
        candidates=pool.items,
        qrels=[{0: 1.0} for _ in queries],
        metric="hit@1",
        candidate_lists=lists,
        meta_task=info.meta_task if info else meta_task,
        modality_group=modality_group,
        in_distribution=info.in_distribution if info else None,
        chance=hit_chance([len(candidates) for candidates in lists], [1] * len(lists), 1),
        query_ids=query_ids,
        candidate_ids=pool.ids,
    )


def _parse_row(row: dict[str, Any], root: Any, split: bool, target_instructions: bool = True,
               cells: dict[tuple, Item] | None = None) -> tuple[Item, list[Item]]:
    """The query and candidate Items of one row; `cells` memoises candidates by their (text, image, instruction)
    cells, as a task's lists repeat the same candidates (Items are frozen, so one object serves every list)."""
    cells = {} if cells is None else cells
    query = mmeb_item(row["qry_text"], row["qry_img_path"], root, split=split, instruction=row.get("qry_inst"))
    if query is None:
        raise InputError("empty query (no qry_text and no qry_img_path)")
    texts = as_text_list(row["tgt_text"], "tgt_text")
    images = as_text_list(row["tgt_img_path"], "tgt_img_path")
    if not texts and not images:
        raise InputError("empty candidate list (tgt_text and tgt_img_path are empty)",
                         fix="drop the row or restore its candidates")
    if texts and images and len(texts) != len(images):
        raise InputError(f"tgt_text has {len(texts)} entries but tgt_img_path has {len(images)}")
    count = max(len(texts), len(images))
    texts = texts or [""] * count
    images = images or [""] * count
    instructions = _per_candidate(row.get("tgt_inst") if target_instructions else None, count)
    candidates = []
    for index, (text, image, instruction) in enumerate(zip(texts, images, instructions)):
        cell = (text, image, instruction)
        item = cells.get(cell)
        if item is None:
            item = mmeb_item(text, image, root, split=split, instruction=instruction)
            if item is not None:
                cells[cell] = item
        if item is None:
            raise InputError(f"candidate {index} is empty (no text and no image)")
        candidates.append(item)
    return query, candidates


def _per_candidate(value: Any, count: int) -> list[Any]:
    if value is None or isinstance(value, str):
        return [value] * count
    values = as_text_list(value, "tgt_inst")
    if len(values) != count:
        raise InputError(f"tgt_inst has {len(values)} entries for {count} candidates")
    return values


def read_mmeb_v1_suite(root: str | os.PathLike, image_root: str | os.PathLike | None = None, *,
                       datasets: Iterable[str] | None = None, **options: Any) -> list[EvalTask]:
    """Every MMEB-V1 task found under `root` (one folder per data set), or only `datasets`."""
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*.parquet")))
    if datasets is not None:
        wanted = list(datasets)
        by_name = {p.name: p for p in folders}
        missing = [d for d in wanted if d not in by_name]
        if missing:
            raise InputError(f"data set(s) {missing} not found under '{root}'",
                             fix=f"choose from {sorted(by_name)}")
        folders = [by_name[d] for d in wanted]
    return [read_mmeb_v1(folder, image_root if image_root is not None else root, **options) for folder in folders]
