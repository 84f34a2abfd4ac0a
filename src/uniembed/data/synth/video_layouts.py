"""Synthetic video test tasks written in the MMEB-V2 data sets' own layouts (the reference's columns and
frame folders), so the synthetic suite reads them through the real parsers of `readers.mmeb_v2_video`.

    SynMotion   SmthSmthV2 (`ssv2`): video_id, pos_text, neg_text; frames <frames>/<video_id>/
    SynT2V      MSR-VTT (`msrvtt`): video_id, video, caption; frames <frames>/<video_id>/
    SynVideoQA  MVBench (`mvbench`): subset, question, video, candidates, answer; frames <frames>/<subset>/<video>/
    SynMoment   QVHighlight (`moment_retrieval`): query, video_path; <frames>/<name>/query/ and one folder per
                clip beside it, the gold one named positive*; here those folders are relative symlinks to the
                rendered clips (a clip shared by several queries is drawn once and encoded once)

Each writer returns the rows (written after rendering) and the metadata fields its reader needs. The
items the readers build are the same as those of the MMEB-style rows these tasks had before: same texts,
instructions, frames and candidate order (except moment retrieval, whose clip folders are listed by name).
"""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from .examples import SynthExample

SUBSET = "synthetic"  # the MVBench-style `subset` column of SynVideoQA
STR_LIST = pa.list_(pa.string())
SCHEMAS = {
    "ssv2": pa.schema([("video_id", pa.string()), ("pos_text", pa.string()), ("neg_text", STR_LIST)]),
    "msrvtt": pa.schema([("video_id", pa.string()), ("video", pa.string()), ("caption", pa.string())]),
    "mvbench": pa.schema([("subset", pa.string()), ("question", pa.string()), ("video", pa.string()),
                          ("candidates", STR_LIST), ("answer", pa.string())]),
    "moment_retrieval": pa.schema([("query", pa.string()), ("video_path", pa.string())]),
}
PARSER = {"SynMotion": "ssv2", "SynT2V": "msrvtt", "SynVideoQA": "mvbench", "SynMoment": "moment_retrieval"}
# where each task's rendered frames go, below video/frames/
MEDIA_FOLDER = {"SynMotion": "SynMotion", "SynT2V": "SynT2V", "SynVideoQA": f"SynVideoQA/{SUBSET}",
                "SynMoment": "SynMoment/_clips"}


def _instruction(text: str) -> tuple[str, str]:
    """(instruction, content) of a synthetic "<|video_1|>\\nInstruction: content\\n" text."""
    body = text.replace("<|video_1|>", "").strip()
    head, _, tail = body.partition(": ")
    return head + ":", tail.strip()


def _name(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]


def video_rows(task: str, examples: list[SynthExample], paths: list[tuple[str, list[str]]]) -> tuple[list[dict], dict]:
    """Rows in the task's real layout, and the metadata its reader needs (parser, instructions, frames).

    `paths[i]` is (query media path, candidate media paths) as `MediaWriter` named them."""
    parser = PARSER[task]
    meta: dict = {"parser": parser, "frames": f"video/frames/{task}"}
    rows: list[dict] = []
    if parser == "ssv2":
        for ex, (query, _) in zip(examples, paths):
            texts = [text for text, _ in ex.candidates]
            rows.append({"video_id": _name(query), "pos_text": texts[0], "neg_text": texts})
        meta["query_instruction"] = ex.query_text.replace("<|video_1|>", "").strip()
        meta["target_instruction"] = None
    elif parser == "msrvtt":
        for ex, (_, targets) in zip(examples, paths):
            instruction, caption = _instruction(ex.query_text)
            rows.append({"video_id": _name(targets[0]), "video": _name(targets[0]) + ".mp4", "caption": caption})
        meta["query_instruction"] = instruction
        meta["target_instruction"] = ex.candidates[0][0].replace("<|video_1|>", "").strip()
    elif parser == "mvbench":
        for ex, (query, _) in zip(examples, paths):
            instruction, question = _instruction(ex.query_text)
            texts = [text for text, _ in ex.candidates]
            rows.append({"subset": SUBSET, "question": question, "video": _name(query), "candidates": texts,
                         "answer": texts[0]})
        meta["query_instruction"] = instruction
        meta["options_in_query"] = False
    else:
        for i, ex in enumerate(examples):
            instruction, event = _instruction(ex.query_text)
            rows.append({"query": event, "video_path": f"q{i:05d}.mp4"})
        meta["query_instruction"] = instruction
        meta["target_instruction"] = ex.candidates[0][0].replace("<|video_1|>", "").strip()
    return rows, meta


def link_moment_folders(frames: Path, paths: list[tuple[str, list[str]]]) -> None:
    """`<frames>/q<i>/query`, `positive`, `negative_<k>`: relative symlinks to the rendered clips."""
    for i, (query, targets) in enumerate(paths):
        folder = frames / f"q{i:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        names = ["query", "positive"] + [f"negative_{k:02d}" for k in range(len(targets) - 1)]
        for link, rel in zip(names, [query] + targets):
            os.symlink(os.path.join("..", "_clips", _name(rel)), folder / link, target_is_directory=True)
