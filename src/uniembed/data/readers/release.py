"""What the zero-shot benchmark readers share: a `Release` (how a data set unpacks) and careful file readers.

Each benchmark's reader sits in its own file beside this one (circo, fashioniq, text_video, long_captions,
sugarcrepe); the suites that find the folders and score the tasks are in `eval/suites/zeroshot/`.
"""
from __future__ import annotations

import io
import json
import os
import pickle
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask

MEDIA_SUFFIXES = {"image": (".jpg", ".jpeg", ".png"), "video": (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")}
# U-MARVEL passes its videos to qwen-vl-utils without nframes, so they are sampled at 2 fps, at least 4 and at most
# 768 frames, an even count (collators/eval_collator.py:4, collators/qwen2_vision_process.py:23-26)
TEXT_VIDEO_SAMPLING = {"fps": 2.0, "num_frames": 768}
LAYOUT_FIX = "check the suite's expected layout (uniembed eval --check)"


@dataclass(frozen=True)
class Release:
    """One data set's release as it unpacks: where it may be, what it reads, where its media are."""

    name: str
    folders: tuple[str, ...]  # folder names under ROOT, tried in order (then ROOT itself)
    files: tuple[str, ...]  # files it reads, relative to the folder
    keys: tuple[str, ...]  # keys / columns it reads
    media: tuple[str, ...]  # media folders, relative to the folder, tried in order
    kind: str = "image"  # "image" or "video" (which --*-root flag replaces the media folder)
    instructions: dict = field(default_factory=dict)  # direction -> query instruction (None: none)
    source: str = ""
    subdirs: tuple[str, ...] = ("",)  # where in the folder the files may be (a release zip's own folder)


def file_path(release: Release, folder: Path, index: int) -> Path:
    """The release's `index`-th file, in the first of its subfolders that holds the first file."""
    sub = next((d for d in release.subdirs if (folder / d / release.files[0]).is_file()), release.subdirs[0])
    return folder / sub / release.files[index]


def read_json(path: Path) -> Any:
    """A JSON file's value; a missing or broken file is an `InputError` naming it."""
    if not path.is_file():
        raise InputError("file not found", path=path, fix=LAYOUT_FIX)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg} at line {exc.lineno})", path=path) from exc


def read_lines(path: Path) -> list[str]:
    """A text file's non-blank lines, stripped."""
    if not path.is_file():
        raise InputError("file not found", path=path, fix=LAYOUT_FIX)
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class _PlainUnpickler(pickle.Unpickler):
    """raw-captions.pkl holds only dicts, lists and strings: refuse anything that would import code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only plain containers are expected)")


def read_pickle(path: Path) -> Any:
    """A pickle of plain containers (dicts, lists, strings); anything that would import code is refused."""
    if not path.is_file():
        raise InputError("file not found", path=path, fix=LAYOUT_FIX)
    try:
        return _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise InputError(f"not a captions pickle ({exc})", path=path) from exc


def by_name(folder: Path, kind: str, stem: bool) -> dict[str, Path]:
    """Media files below `folder` (recursively) by file stem or full file name, as CLIP4Clip finds its videos."""
    found: dict[str, Path] = {}
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            if Path(name).suffix.lower() in MEDIA_SUFFIXES[kind]:
                found.setdefault(Path(name).stem if stem else name, Path(root) / name)
    return found


def existing(path: Path, where: Path, row: int | None = None) -> Path:
    """`path` when it is a file, else an `InputError` naming the file and row that referred to it."""
    if not path.is_file():
        raise InputError(f"media file {path.name} not found", path=where, row=row, fix=f"expected at {path}")
    return path


def entry_fields(row: Any, keys: Sequence[str], path: Path, n: int) -> list:
    """The values of `keys` in one JSON entry (row `n` of `path`), or an `InputError` saying which are missing."""
    if not isinstance(row, dict):
        raise InputError(f"entry is a {type(row).__name__}, not an object with {list(keys)}", path=path, row=n)
    missing = [k for k in keys if k not in row]
    if missing:
        raise InputError(f"entry lacks key(s) {missing}", path=path, row=n, fix=f"each entry needs {list(keys)}")
    return [row[k] for k in keys]


def paired_tasks(release: Release, media: list[Item], captions: list[list[str]], forward: str, backward: str,
                 extra: tuple[str, ...]) -> list[EvalTask]:
    """Two global tasks from (medium, its captions) pairs: caption -> medium and medium -> caption."""
    text_queries, text_qrels, caption_owner = [], [], []
    for m, texts in enumerate(captions):
        for text in texts:
            text_queries.append(Item(text=text, instruction=release.instructions.get(forward)))
            text_qrels.append({m: 1.0})
            caption_owner.append(m)
    caption_items = [Item(text=q.text) for q in text_queries]
    by_media: dict[int, dict[int, float]] = defaultdict(dict)
    for c, m in enumerate(caption_owner):
        by_media[m][c] = 1.0
    media_queries = [m.with_instruction(release.instructions.get(backward)) for m in media]
    group = release.kind
    sampling = dict(TEXT_VIDEO_SAMPLING) if group == "video" else None
    return [EvalTask(f"{release.name} {forward}", text_queries, list(media), text_qrels, metric="hit@1",
                     meta_task=forward, modality_group=group, extra_metrics=extra, video_sampling=sampling),
            EvalTask(f"{release.name} {backward}", media_queries, caption_items,
                     [by_media[m] for m in range(len(media))], metric="hit@1", meta_task=backward,
                     modality_group=group, extra_metrics=extra, video_sampling=sampling)]
