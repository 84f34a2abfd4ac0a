"""The built-in synthetic benchmark (`uniembed synth`), read through the same readers as the real ones.

`DIR/metadata.json` (written by `uniembed.data.synth.generate`) lists the test tasks:
    {"tasks": [{"name", "layout", "path", "media_root", "meta_task", "modality_group", "ranking", "metric",
                "chance_percent" (or "chance" as a fraction), "in_distribution", ...}, ...]}
`layout` picks the reader: "mmeb_v1" (MMEB-V1 parquet), "mmeb_v2_video" (an MMEB-V2 video data set's own
table: `parser` names its reference dataset class, `frames` its frame root, optional `query_instruction`,
`target_instruction`, `options_in_query`), "beir"
(visual documents), "mbeir" (path = an M-BEIR root, `mbeir_task` = "<dataset>_task<id>": its
query/test, cand_pool/local and qrels/test files).
`path` and `media_root` are relative to DIR. The metadata's labels override the reader's.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ...data.examples import EvalTask
from ...errors import InputError
from .base import Suite, SuiteOptions, register, select


def _media_root(data: Path, entry: dict) -> Path:
    """The entry's media root relative to DIR ("" or absent: DIR itself)."""
    return data / (entry.get("media_root") or entry.get("image_root") or ".")


def _read_mmeb(path: Path, data: Path, entry: dict) -> EvalTask:
    from ...data.readers.mmeb_v1 import read_mmeb_v1

    return read_mmeb_v1(path, _media_root(data, entry), name=entry["name"])


def _read_video(path: Path, data: Path, entry: dict) -> EvalTask:
    """A video task in an MMEB-V2 data set's layout: `parser` names the reference dataset class whose
    columns the table has, `frames` its frame root; the entry's instructions replace the reference's."""
    from ...data.readers.catalog import Source
    from ...data.readers.mmeb_v2_video import read_mmeb_v2_video

    if "parser" not in entry or "frames" not in entry:
        raise InputError(f"task {entry['name']}: a video entry needs 'parser' and 'frames' (format version 2)",
                         path=data / "metadata.json", fix="regenerate the benchmark with `uniembed synth`")
    source = Source(entry["name"], "video", entry.get("meta_task", ""), f"uniembed-synth/{entry['name']}", None,
                    "test", entry["parser"], entry.get("ranking", "local"))
    instructions = {key: entry[key] for key in ("query_instruction", "target_instruction") if key in entry}
    task = read_mmeb_v2_video(path, data / entry["frames"], name=entry["name"], source=source,
                              options_in_query=entry.get("options_in_query", True), **instructions)
    # the synthetic benchmark's protocol is the model's own frame policy (the demo trains and scores at its
    # own frame count), not MMEB-V2's 8 of 64
    return dataclasses.replace(task, video_sampling=None)


def _read_beir(path: Path, data: Path, entry: dict) -> EvalTask:
    from ...data.readers.visdoc import read_visdoc

    return read_visdoc(path, _media_root(data, entry) if entry.get("media_root") else None, name=entry["name"],
                       query_instruction=entry.get("query_instruction"))


def _read_mbeir(path: Path, data: Path, entry: dict) -> EvalTask:
    """An M-BEIR dataset-task (`mbeir_task`, e.g. "synt2i_task0") under the M-BEIR root `path`."""
    from ...data.readers.mbeir import read_mbeir
    from ...data.synth.mbeir import mbeir_paths

    if "mbeir_task" not in entry:
        raise InputError(f"task {entry['name']}: an mbeir entry needs 'mbeir_task' (format version 2)",
                         path=data / "metadata.json", fix="regenerate the benchmark with `uniembed synth`")
    queries, pool, qrels = mbeir_paths(path, entry["mbeir_task"])
    instructions = path / "instructions" / "query_instructions.tsv"
    return read_mbeir(queries, pool, qrels if qrels.exists() else None, media_root=_media_root(data, entry),
                      instructions=instructions if instructions.exists() else None, name=entry["name"])


READERS = {"mmeb_v1": _read_mmeb, "mmeb": _read_mmeb, "mmeb_v2_video": _read_video, "video": _read_video,
           "beir": _read_beir, "visdoc": _read_beir, "mbeir": _read_mbeir}
LABELS = ("meta_task", "modality_group", "metric", "in_distribution")


def as_global(task: EvalTask) -> EvalTask:
    """A local MMEB-style task (gold first in each list) ranked against its whole pool instead."""
    qrels = [{lst[j]: rel for j, rel in rels.items()} for lst, rels in zip(task.candidate_lists, task.qrels)]
    task.qrels, task.candidate_lists = qrels, None
    return task


def read_metadata(data: Path) -> list[dict]:
    path = data / "metadata.json"
    if not path.exists():
        raise InputError("no metadata.json", path=data, fix="generate the benchmark with `uniembed synth --out DIR`")
    try:
        metadata = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg})", path=path) from exc
    entries = metadata.get("tasks") if isinstance(metadata, dict) else None
    if not isinstance(entries, list):
        raise InputError('metadata.json has no "tasks" list', path=path)
    for number, entry in enumerate(entries):
        missing = [key for key in ("name", "layout", "path") if key not in entry]
        if missing:
            raise InputError(f"task entry {number} lacks {missing}", path=path)
        if entry["layout"] not in READERS:
            raise InputError(f"task {entry['name']}: unknown layout {entry['layout']!r}", path=path,
                             fix=f"use one of {sorted(READERS)}")
    return [entry for entry in entries if entry.get("split", "test") == "test"]


def load_synthetic(data: Path, options: SuiteOptions) -> list[EvalTask]:
    entries = {entry["name"]: entry for entry in read_metadata(data)}
    tasks = []
    for name in select(list(entries), options.datasets, "synthetic"):
        entry = entries[name]
        task = READERS[entry["layout"]](data / entry["path"], data, entry)
        for label in LABELS:
            if entry.get(label) is not None:
                setattr(task, label, entry[label])
        if entry.get("ranking") == "global" and task.is_local:
            task = as_global(task)
        if entry.get("chance_percent") is not None:
            task.chance = float(entry["chance_percent"]) / 100.0
        elif entry.get("chance") is not None:
            task.chance = float(entry["chance"])
        tasks.append(task)
    return tasks


register(Suite("synthetic", "the built-in synthetic benchmark (uniembed synth)", load_synthetic,
               layout="DIR/metadata.json listing tasks (written by `uniembed synth`)"))
