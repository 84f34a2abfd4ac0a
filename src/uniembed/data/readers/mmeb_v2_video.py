"""MMEB-V2 video tasks: videos as frame folders `<DS>/<video_id>/frame_XXXX.jpg`, 8 frames sampled
uniformly from at most 64.

Layout read here (MMEB columns, with video columns beside the image ones): a table in `<DS>/`
(`*.parquet` or `*.jsonl`), one row per query:
    qry_inst (optional), qry_text, qry_video_path, qry_img_path   (any query part may be empty)
    tgt_inst (optional; str or one per candidate), tgt_text, tgt_video_path, tgt_img_path  (lists)
Paths are relative to `media_root` (default: the folder holding `<DS>`, so `<DS>/<video_id>` resolves).
The first candidate of each row is its gold. Ranking is local (each row's own list: SSv2, video QA,
moment retrieval) or global (the de-duplicated union of all rows' candidates: other classification,
retrieval); `ranking=` decides, else the MMEB-V2 table for known names, else rows holding only their
gold make the task global.
Videos stay folders in `Item.video`; `EvalTask.video_sampling` tells the encoder how to sample them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask
from .catalog import MMEB_V2_VIDEO_TASKS, lookup
from .common import ReadReport, RowGuard, as_text_list, mmeb_item, read_rows, table_files
from .mmeb_v1 import local_task
from .pool import CandidatePool, hit_chance

MMEB_V2_VIDEO_SAMPLING = {"num_frames": 8, "max_source_frames": 64}
_TARGET_LISTS = ("tgt_text", "tgt_video_path", "tgt_img_path")


def read_mmeb_v2_video(
    path: str | os.PathLike,
    media_root: str | os.PathLike | None = None,
    *,
    name: str | None = None,
    ranking: str | None = None,
    video_sampling: dict[str, int] | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    max_rows: int | None = None,
) -> EvalTask:
    """One MMEB-V2 video task from its data set folder (or table file)."""
    path = Path(path)
    files = [f for f in table_files(path) if f.suffix in (".parquet", ".jsonl")]
    task_dir = path if path.is_dir() else path.parent
    name = name or task_dir.name
    root = media_root if media_root is not None else task_dir.parent
    info = lookup(MMEB_V2_VIDEO_TASKS, name)
    if ranking not in (None, "local", "global"):
        raise InputError(f"ranking must be 'local' or 'global', got {ranking!r}")
    pool = CandidatePool()
    queries: list[Item] = []
    lists: list[list[int]] = []
    for file in files:
        guard = RowGuard(file, skip_bad_rows, report)
        report = guard.report
        for row_number, row in read_rows(file, (), guard):
            if max_rows is not None and len(queries) >= max_rows:
                break
            parsed = guard.build(row_number, lambda: _parse_row(row, root))
            if parsed is not None:
                queries.append(parsed[0])
                lists.append([pool.add(item) for item in parsed[1]])
        guard.finish()
    query_ids = [f"{name}:{i}" for i in range(len(queries))]
    if ranking is None:  # the MMEB-V2 table; else rows listing only their gold mean a global pool
        ranking = info.ranking if info else ("global" if lists and all(len(c) == 1 for c in lists) else "local")
    if ranking == "local":
        task = local_task(name, queries, pool, lists, MMEB_V2_VIDEO_TASKS, modality_group="video",
                          query_ids=query_ids)
    else:
        if not queries:
            raise InputError(f"task '{name}' has no usable query rows", path=path)
        task = EvalTask(name=name, queries=queries, candidates=pool.items,
                        qrels=[{candidates[0]: 1.0} for candidates in lists], metric="hit@1",
                        meta_task=info.meta_task if info else "", modality_group="video",
                        chance=hit_chance([len(pool)] * len(queries), [1] * len(queries), 1),
                        query_ids=query_ids, candidate_ids=pool.ids)
    task.video_sampling = dict(video_sampling or MMEB_V2_VIDEO_SAMPLING)
    return task


def _item(text: Any, video: Any, image: Any, instruction: Any, root: Any) -> Item | None:
    return mmeb_item(text, image, root, instruction=instruction, video_path=video)


def _parse_row(row: dict[str, Any], root: Any) -> tuple[Item, list[Item]]:
    query = _item(row.get("qry_text"), row.get("qry_video_path"), row.get("qry_img_path"), row.get("qry_inst"), root)
    if query is None:
        raise InputError("empty query (no qry_text, qry_video_path or qry_img_path)")
    columns = {name: as_text_list(row.get(name), name) for name in _TARGET_LISTS}
    count = max(len(values) for values in columns.values())
    if count == 0:
        raise InputError("empty candidate list (tgt_text, tgt_video_path and tgt_img_path are empty)",
                         fix="drop the row or restore its candidates")
    for column, values in columns.items():
        if values and len(values) != count:
            raise InputError(f"{column} has {len(values)} entries for {count} candidates")
        columns[column] = values or [""] * count
    instructions = row.get("tgt_inst")
    instructions = ([instructions] * count if instructions is None or isinstance(instructions, str)
                    else as_text_list(instructions, "tgt_inst"))
    if len(instructions) != count:
        raise InputError(f"tgt_inst has {len(instructions)} entries for {count} candidates")
    candidates = []
    for index in range(count):
        item = _item(columns["tgt_text"][index], columns["tgt_video_path"][index], columns["tgt_img_path"][index],
                     instructions[index], root)
        if item is None:
            raise InputError(f"candidate {index} is empty")
        candidates.append(item)
    return query, candidates
