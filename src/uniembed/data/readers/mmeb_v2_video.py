"""MMEB-V2 video tasks, read from the data set's own hub repository and the MMEB-V2 frame archive.

Each data set's table comes from its repository (`catalog.MMEB_V2_VIDEO`: repository, subset, split) in
that repository's own columns; its frames from `TIGER-Lab/MMEB-V2` unpacked as the reference's
download script does (`video-tasks/frames/<group>/<data set>/<id>/frame_XXXX.jpg`). One parser per
reference dataset class turns a row into a query, its candidates (with names, as the reference's
`cand_names`) and the gold names. Facts from TIGER-AI-Lab/VLM2Vec@6e1e1d4 are cited per parser
(src/data/eval_dataset/<file>.py:<line>).

Ranking: local parsers rank each query's own list; global ones rank the de-duplicated union of all
rows' candidates by name (`generate_cand_dataset`, base_eval_dataset.py:121-152), and video
classification adds the data set's FULL label list (video_classification_datasets.py:61-64), so a
label that no test video has still competes. Frames: 8 sampled uniformly from at most 64 saved
(video.yaml `num_frames: 8`, `max_frames_saved: 64`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask
from .catalog import MMEB_V2_SOURCES, Source, video_labels
from .common import ReadReport, RowGuard, as_text_list, text_or_none
from .hub import data_files, read_table_rows
from .pool import CandidatePool, hit_chance

# 8 frames, linspace over at most 64 saved frames, positions truncated to int (floor):
# TIGER-AI-Lab/VLM2Vec@6e1e1d4 experiments/public/eval/video.yaml (num_frames 8, max_frames_saved 64),
# src/utils/vision_utils/vision_utils.py:254-262 (np.linspace(..., dtype=int))
MMEB_V2_VIDEO_SAMPLING = {"num_frames": 8, "max_source_frames": 64, "rounding": "floor"}

# Instructions the reference hard-codes per dataset class (part of its data, not a model profile).
VIDEO_TARGET = "Understand the content of the provided video."  # msrvtt_dataset.py:11 (and every retrieval class)
QA_PROMPT = ("Given a video and a question, select the most accurate answer from the provided candidates. "
             "Return only the exact text of your chosen answer. Question:")  # mvbench_dataset.py:101 (all QA)
CLASSIFY_INSTRUCTION = {  # video_classification_utils.py:16-22 (DATASET_INSTRUCTION, by hub data set name)
    "Kinetics-700": "Recognize the category of the video content.",
    "SmthSmthV2": "What actions or object interactions are being performed by the person in the video?",
    "UCF101": "What activities or sports are being performed by the person in the video?",
    "HMDB51": "What actions or objects interactions are the person in the video doing?",
    "Breakfast": "Recognize the breakfast type that the person is cooking in the video.",
}
RETRIEVAL_QUERY = {  # TASK_INST_QRY of each retrieval class, line 10 of the file named
    "msrvtt": "Find a video that contains the following visual content:",  # msrvtt_dataset.py
    "msvd": "Find the video snippet that corresponds to the given summary:",  # msvd_dataset.py
    "didemo": "Find a video that includes the following described scenes:",  # didemo_dataset.py
    "vatex": "Select a video that fits the description provided:",  # vatex_dataset.py
    "youcook2": "Find a video that demonstrates the following action while making a recipe:",  # youcook2_dataset.py
}
MOMENT_QUERY = "Find the clip that corresponds to the described scene in the given video:"  # moment_retrieval_datasets.py:10
MOMENTSEEKER = {  # momentseeker_dataset.py:12-15
    "text": "Find the clip that corresponds to the given text:",
    "image": "Select the video clip that aligns with the given text and image:",
    "video": "Find the clip that corresponds to the given sentence and video segment:",
    "target": "Understand the content of the provided video clip.",
}


@dataclass
class Context:
    """What a parser needs besides the row: where frames are, the instructions, the query format."""

    name: str
    dataset: str  # the hub data set name (repository name), keys the label list and classification prompt
    frames: Path
    query_instruction: str | None
    target_instruction: str | None
    options_in_query: bool = True
    checked: dict = field(default_factory=dict)

    def frame_dir(self, *parts: str) -> str:
        """A frame folder under the data set's frame root, checked to hold frames (once per folder)."""
        path = os.path.join(os.fspath(self.frames), *parts)
        if path not in self.checked:
            try:
                names = os.listdir(path)
            except OSError:
                raise InputError(f"frame folder '{path}' not found",
                                 fix="unpack the MMEB-V2 frame archives (see docs/evaluation.md) "
                                     "or set --video-root") from None
            if not any(os.path.splitext(n)[1].lower() in (".jpg", ".jpeg", ".png") for n in names):
                raise InputError(f"frame folder '{path}' holds no .jpg/.jpeg/.png frames")
            self.checked[path] = True
        return path


@dataclass
class Parsed:
    query: Item
    candidates: list[Item]
    names: list[str]
    gold: set[str]


def _str(row: dict, column: str) -> str:
    value = text_or_none(row.get(column))
    if value is None:
        raise InputError(f"empty {column}")
    return value


def _lettered(question: str, options: list[str]) -> tuple[str, list[str]]:
    """The reference's `qa_template` (vision_utils.py:34-46): the question, "Options:" and "(A) option" lines."""
    lettered = [f"({chr(ord('A') + i)}) {option}" for i, option in enumerate(options)]
    return "\n".join([question, "Options:", *lettered]).rstrip(), lettered


def _after_letter(option: str) -> str:
    """`o[o.find('. '):].strip('. ')` (videomme_dataset.py:63, egoschema_dataset.py:64), "A. text" -> "text"."""
    return option[option.find(". "):].strip(". ")


# ------------------------------------------------------------------------------------------- parsers


def _classification(row: dict, ctx: Context) -> Parsed:  # video_classification_datasets.py:21-40
    video, label = _str(row, "video_id"), _str(row, "pos_text")
    query = Item(video=ctx.frame_dir(video), instruction=ctx.query_instruction)
    return Parsed(query, [Item(text=label, instruction=ctx.target_instruction)], [label], {label})


def _ssv2(row: dict, ctx: Context) -> Parsed:  # ssv2_dataset.py:20-40: candidates are neg_text, gold pos_text
    video, label = _str(row, "video_id"), _str(row, "pos_text")
    options = as_text_list(row.get("neg_text"), "neg_text")
    query = Item(video=ctx.frame_dir(video), instruction=ctx.query_instruction)
    return Parsed(query, [Item(text=o, instruction=ctx.target_instruction) for o in options], options, {label})


def _retrieval(video_column: str | None, id_column: str | None, caption_column: str, first_caption: bool,
               name_from_path: bool = False) -> Callable[[dict, Context], Parsed]:
    """Caption -> video: the candidate is the video's frame folder, named by its id."""
    def parse(row: dict, ctx: Context) -> Parsed:
        caption = row.get(caption_column)
        if first_caption:
            captions = as_text_list(caption, caption_column)
            caption = captions[0] if captions else None
        caption = text_or_none(caption)
        if caption is None:
            raise InputError(f"empty {caption_column}")
        if name_from_path:
            name = os.path.splitext(os.path.basename(_str(row, video_column)))[0]
        else:
            name = _str(row, id_column)
        target = Item(video=ctx.frame_dir(name), instruction=ctx.target_instruction)
        return Parsed(Item(text=caption, instruction=ctx.query_instruction), [target], [name], {name})
    return parse


def _moment(row: dict, ctx: Context) -> Parsed:  # moment_retrieval_datasets.py:25-76
    name = os.path.splitext(os.path.basename(_str(row, "video_path")))[0]
    folder = Path(ctx.frame_dir(name, "query")).parent
    query = Item(text=_str(row, "query"), video=str(folder / "query"), instruction=ctx.query_instruction)
    clips = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name != "query")
    if not clips:
        raise InputError(f"no clip folders beside '{folder / 'query'}'")
    gold = {str(folder / c) for c in clips if c.startswith("positive")}
    if not gold:
        raise InputError(f"no clip folder named positive* in '{folder}'")
    return Parsed(query, [Item(video=ctx.frame_dir(name, c), instruction=ctx.target_instruction) for c in clips],
                  [str(folder / c) for c in clips], gold)


def _momentseeker(row: dict, ctx: Context) -> Parsed:  # momentseeker_dataset.py:26-93
    text, source = _str(row, "query"), text_or_none(row.get("input_frames")) or ""
    if source.endswith(".mp4"):
        query = Item(text=text, video=ctx.frame_dir("video_frames", source.split(".mp4")[0].replace("/", "_")),
                     instruction=MOMENTSEEKER["video"])
    elif source.endswith(".jpg"):
        path = os.path.join(os.fspath(ctx.frames), f"query_{source}")
        if not os.path.isfile(path):
            raise InputError(f"query image '{path}' not found")
        query = Item(text=text, image=path, instruction=MOMENTSEEKER["image"])
    else:
        query = Item(text=text, instruction=MOMENTSEEKER["text"])

    def clip_names(column: str) -> list[str]:
        entries = row.get(column) or []
        return [str(entry["output_path"]).replace("/", "_").split(".mp4")[0] for entry in entries]

    positives, negatives = clip_names("positive_frames"), clip_names("negative_frames")
    if not positives:
        raise InputError("empty positive_frames")
    names = [ctx.frame_dir("video_frames", n) for n in positives + negatives]
    target = ctx.target_instruction if ctx.target_instruction is not None else MOMENTSEEKER["target"]
    return Parsed(query, [Item(video=n, instruction=target) for n in names], names, set(names[:len(positives)]))


def _mvbench(row: dict, ctx: Context) -> Parsed:  # mvbench_dataset.py:112-163: frames at <subset>/<video>
    options = as_text_list(row.get("candidates"), "candidates")
    answer = _str(row, "answer")
    if answer not in options:
        raise InputError(f"answer {answer!r} is not one of the candidates")
    video = ctx.frame_dir(_str(row, "subset"), _str(row, "video"))
    if ctx.options_in_query:
        text, cands = _lettered(_str(row, "question"), options)
    else:
        text, cands = _str(row, "question"), options
    gold = cands[options.index(answer)]
    return Parsed(Item(text=text, video=video, instruction=ctx.query_instruction),
                  [Item(text=c) for c in cands], cands, {gold})


def _videomme(row: dict, ctx: Context) -> Parsed:  # videomme_dataset.py:30-71
    options = as_text_list(row.get("options"), "options")
    answer = _str(row, "answer")
    letters = ["A", "B", "C", "D"]
    if answer not in letters[:len(options)]:
        raise InputError(f"answer {answer!r} is not one of {letters[:len(options)]}")
    text = _str(row, "question") + "\n" + "\n".join(options)
    cands = [_after_letter(o) for o in options]
    query = Item(text=text, video=ctx.frame_dir(_str(row, "videoID")), instruction=ctx.query_instruction)
    return Parsed(query, [Item(text=c) for c in cands], options, {options[letters.index(answer)]})


def _nextqa(row: dict, ctx: Context) -> Parsed:  # nextqa_dataset.py:30-77: candidates a0..a4, answer an index
    options = [str(row.get(f"a{i}", "")) for i in range(5)]
    answer = int(row["answer"])
    text, _ = _lettered(_str(row, "question"), options)
    query = Item(text=text, video=ctx.frame_dir(_str(row, "video")), instruction=ctx.query_instruction)
    return Parsed(query, [Item(text=o) for o in options], options, {options[answer]})


def _egoschema(row: dict, ctx: Context) -> Parsed:  # egoschema_dataset.py:30-75: question and options joined by " "
    options = as_text_list(row.get("option"), "option")
    answer = int(_str(row, "answer"))
    text = _str(row, "question") + " ".join(options)
    query = Item(text=text, video=ctx.frame_dir(_str(row, "video_idx")), instruction=ctx.query_instruction)
    return Parsed(query, [Item(text=_after_letter(o)) for o in options], options, {options[answer]})


def _activitynetqa(row: dict, ctx: Context) -> Parsed:  # activitynetqa_dataset.py:24-78: yes/no, frames v_<name>
    answer = _str(row, "answer")
    if answer not in ("yes", "no"):
        raise InputError(f"answer {answer!r} is not yes/no")
    text = _str(row, "question") + "? (A) yes; (B) no."
    query = Item(text=text, video=ctx.frame_dir("v_" + _str(row, "video_name")), instruction=ctx.query_instruction)
    return Parsed(query, [Item(text="yes"), Item(text="no")], ["yes", "no"], {answer})


@dataclass(frozen=True)
class Parser:
    parse: Callable[[dict, Context], Parsed]
    columns: tuple[str, ...]  # the columns the reference reads
    query_instruction: str | None = None
    target_instruction: str | None = None
    corpus: bool = False  # add the full label list (video classification)


PARSERS: dict[str, Parser] = {
    "video_classification": Parser(_classification, ("video_id", "pos_text"), corpus=True),
    "ssv2": Parser(_ssv2, ("video_id", "pos_text", "neg_text")),
    "msrvtt": Parser(_retrieval("video", "video_id", "caption", False), ("video_id", "video", "caption"),
                     RETRIEVAL_QUERY["msrvtt"], VIDEO_TARGET),
    "msvd": Parser(_retrieval("video", "video_id", "caption", True), ("video_id", "video", "caption"),
                   RETRIEVAL_QUERY["msvd"], VIDEO_TARGET),
    "didemo": Parser(_retrieval("video", None, "caption", False, name_from_path=True), ("video", "caption"),
                     RETRIEVAL_QUERY["didemo"], VIDEO_TARGET),
    "vatex": Parser(_retrieval(None, "videoID", "enCap", True), ("videoID", "enCap"), RETRIEVAL_QUERY["vatex"],
                    VIDEO_TARGET),
    "youcook2": Parser(_retrieval(None, "id", "sentence", False), ("id", "video_path", "sentence"),
                       RETRIEVAL_QUERY["youcook2"], VIDEO_TARGET),
    "moment_retrieval": Parser(_moment, ("query", "video_path"), MOMENT_QUERY, VIDEO_TARGET),
    "momentseeker": Parser(_momentseeker, ("query", "positive_frames", "negative_frames", "input_frames")),
    "mvbench": Parser(_mvbench, ("subset", "question", "video", "candidates", "answer"), QA_PROMPT),
    "videomme": Parser(_videomme, ("question", "videoID", "options", "answer"), QA_PROMPT),
    "nextqa": Parser(_nextqa, ("video", "question", "answer", "a0", "a1", "a2", "a3", "a4"), QA_PROMPT),
    "egoschema": Parser(_egoschema, ("video_idx", "question", "answer", "option"), QA_PROMPT),
    "activitynetqa": Parser(_activitynetqa, ("video_name", "question", "answer"), QA_PROMPT),
}
_UNSET: Any = object()


def read_mmeb_v2_video(
    path: str | os.PathLike,
    frames: str | os.PathLike,
    *,
    name: str,
    source: Source | None = None,
    query_instruction: str | None = _UNSET,
    target_instruction: str | None = _UNSET,
    options_in_query: bool = True,
    video_sampling: dict[str, Any] | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    max_rows: int | None = None,
) -> EvalTask:
    """One MMEB-V2 video task from its repository folder (`path`) and its frame folder (`frames`).

    `source` (default: the catalog entry of `name`) gives the parser, subset, split and ranking; the
    instructions default to the reference's for that parser and may be overridden (the synthetic benchmark).
    """
    source = source or MMEB_V2_SOURCES.get(name)
    if source is None or source.parser not in PARSERS:
        raise InputError(f"unknown MMEB-V2 video task {name!r}",
                         fix=f"use one of {sorted(s for s, v in MMEB_V2_SOURCES.items() if v.group == 'video')}")
    parser = PARSERS[source.parser]
    dataset = source.repo.rsplit("/", 1)[-1]
    default_query = CLASSIFY_INSTRUCTION.get(dataset) if source.parser in ("video_classification", "ssv2") \
        else parser.query_instruction
    ctx = Context(name, dataset, Path(frames),
                  default_query if query_instruction is _UNSET else query_instruction,
                  parser.target_instruction if target_instruction is _UNSET else target_instruction,
                  options_in_query)
    pool = CandidatePool()
    by_name: dict[str, int] = {}
    queries: list[Item] = []
    lists: list[list[int]] = []
    golds: list[list[int]] = []
    for file in data_files(path, source.subset, source.split):
        guard = RowGuard(file, skip_bad_rows, report)
        report = guard.report
        for row_number, row in read_table_rows(file, parser.columns, guard):
            if max_rows is not None and len(queries) >= max_rows:
                break
            parsed = guard.build(row_number, lambda: _checked(parser.parse(row, ctx)))
            if parsed is None:
                continue
            indices = []
            for item, cand_name in zip(parsed.candidates, parsed.names):
                if source.ranking == "global":  # one candidate per name, the first seen (base_eval_dataset.py:131)
                    if cand_name not in by_name:
                        by_name[cand_name] = pool.add(item, cand_name)
                    indices.append(by_name[cand_name])
                else:
                    indices.append(pool.add(item))
            queries.append(parsed.query)
            lists.append(indices)
            golds.append(sorted({i for i, n in zip(indices, parsed.names) if n in parsed.gold}) if source.ranking
                         == "global" else [j for j, n in enumerate(parsed.names) if n in parsed.gold])
        guard.finish()
    if not queries:
        raise InputError(f"task '{name}' has no usable query rows", path=path)
    if parser.corpus:
        for label in video_labels(dataset):
            if label not in by_name:
                by_name[label] = pool.add(Item(text=label, instruction=ctx.target_instruction), label)
    ids = [f"{name}:{i}" for i in range(len(queries))]
    common = dict(name=name, queries=queries, candidates=pool.items, metric="hit@1", meta_task=source.meta_task,
                  modality_group="video", query_ids=ids, candidate_ids=pool.ids,
                  video_sampling=dict(video_sampling or MMEB_V2_VIDEO_SAMPLING))
    if source.ranking == "global":
        return EvalTask(qrels=[{i: 1.0 for i in gold} for gold in golds],
                        chance=hit_chance([len(pool)] * len(queries), [len(g) for g in golds], 1), **common)
    return EvalTask(qrels=[{j: 1.0 for j in gold} for gold in golds], candidate_lists=lists,
                    chance=hit_chance([len(c) for c in lists], [len(g) for g in golds], 1), **common)


def _checked(parsed: Parsed) -> Parsed:
    if not parsed.candidates:
        raise InputError("empty candidate list")
    if not parsed.gold & set(parsed.names):
        raise InputError("the answer is not among the candidates")
    return parsed
