"""MMEB-V1 (36 image tasks, hit@1, local lists) and MMEB-V2 (image, video and visual-document groups).

Layouts (`--data DIR`):
mmeb-v1: DIR/<Dataset>/test-00000-of-00001.parquet per data set; image paths in the parquet are relative
    to DIR/eval_images or DIR/images when such a folder exists, else to DIR.
mmeb-v2: DIR/image/<Dataset>/ (as mmeb-v1), DIR/video/<Dataset>/ (video tables, frame folders) and
    DIR/visdoc/<Dataset>/ (BEIR queries/corpus/qrels); the folders may also be named image-tasks,
    video-tasks, visdoc-tasks. Groups: modality/image, modality/video, modality/visdoc; overall is the
    plain mean of all task scores (78 when complete).
Meta-task and in/out-of-distribution labels come from the readers' MMEB table.
"""
from __future__ import annotations

from pathlib import Path

from ...data.examples import EvalTask
from ...data.readers.catalog import MMEB_V1_TASKS
from ...data.readers.mmeb_v1 import read_mmeb_v1
from ...data.readers.mmeb_v2_video import read_mmeb_v2_video
from ...data.readers.visdoc import read_visdoc
from ...errors import InputError
from .base import Suite, SuiteOptions, register, select

GROUP_FOLDERS = {"image": ("image", "image-tasks"), "video": ("video", "video-tasks"), "visdoc": ("visdoc", "visdoc-tasks")}


def task_folders(root: Path) -> list[Path]:
    """Data set folders under `root` (folders holding a table or a BEIR layout), by name."""
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("images", "eval_images")
                  and (any(p.glob("*.parquet")) or any(p.glob("*.jsonl")) or (p / "queries").exists()
                       or any(p.glob("queries.*"))))


def image_root(root: Path) -> Path:
    return next((root / name for name in ("eval_images", "images") if (root / name).is_dir()), root)


def load_mmeb_v1(data: Path, options: SuiteOptions) -> list[EvalTask]:
    folders = {p.name: p for p in task_folders(data)}
    ordered = [name for name in MMEB_V1_TASKS if name in folders] + sorted(set(folders) - set(MMEB_V1_TASKS))
    return [read_mmeb_v1(folders[name], image_root(data), name=name)
            for name in select(ordered, options.datasets, "mmeb-v1")]


def load_mmeb_v2(data: Path, options: SuiteOptions) -> list[EvalTask]:
    readers = {"image": lambda p, root: read_mmeb_v1(p, image_root(root), name=p.name),
               "video": lambda p, root: read_mmeb_v2_video(p, root, name=p.name),
               "visdoc": lambda p, root: read_visdoc(p, name=p.name)}
    found: dict[str, tuple[str, Path, Path]] = {}
    for group, names in GROUP_FOLDERS.items():
        root = next((data / n for n in names if (data / n).is_dir()), None)
        if root is None:
            continue
        for folder in task_folders(root):
            found[folder.name] = (group, folder, root)
    if not found:
        raise InputError("no image/, video/ or visdoc/ task folders", path=data,
                         fix="lay out MMEB-V2 as DIR/image/<DS>, DIR/video/<DS>, DIR/visdoc/<DS>")
    tasks = []
    for name in select(list(found), options.datasets, "mmeb-v2"):
        group, folder, root = found[name]
        task = readers[group](folder, root)
        task.modality_group = group
        tasks.append(task)
    return tasks


register(Suite("mmeb-v1", "MMEB-V1: 36 image tasks, hit@1 against each query's own candidates", load_mmeb_v1,
               layout="DIR/<Dataset>/test-00000-of-00001.parquet, images under DIR/eval_images or DIR/images"))
register(Suite("mmeb-v2", "MMEB-V2: image, video and visual-document tasks", load_mmeb_v2,
               layout="DIR/image/<DS>/*.parquet, DIR/video/<DS>/*.parquet|jsonl, DIR/visdoc/<DS>/{queries,corpus,qrels}"))
