"""MMEB-V1 (36 image tasks, hit@1, local lists) and MMEB-V2 (36 image + 18 video + 24 visual-document tasks).

Data root (`--data ROOT`): one folder per hub repository, `ROOT/<owner>/<name>` (or `ROOT/<name>`, or
any folder via `--data-map`), each as `huggingface-cli download <owner>/<name> --repo-type dataset
--local-dir ROOT/<owner>/<name>` leaves it; `catalog.MMEB_V2_SOURCES` lists the repository, subset and
split of each task (the reference's `EVAL_DATASET_HF_PATH`).
mmeb-v1: TIGER-Lab/MMEB-eval (`<Dataset>/test-*.parquet`); images relative to `--image-root`, else the
    first of <MMEB-eval>/eval_images, <MMEB-eval>/images, <MMEB-eval> that holds the first image. A ROOT that itself
    holds the data set folders is read as the MMEB-eval copy.
mmeb-v2: image tasks from ziyjiang/MMEB_Test_Instruct (subset = task), images relative to `--image-root`,
    else <TIGER-Lab/MMEB-V2>/image-tasks; video tasks from their own repositories, frames under
    `--video-root`, else the TIGER-Lab/MMEB-V2 copy (`video-tasks/frames/<group>/<DS>/<id>/`); visdoc
    tasks from their BEIR repositories (pages are in the corpus parquet). Groups: modality/image,
    modality/video, modality/visdoc; overall is the plain mean of all task scores (78 when complete).
"""
from __future__ import annotations

import logging
from pathlib import Path

from ...data.examples import EvalTask
from ...data.readers.catalog import (MMEB_V1_TASKS, MMEB_V2_EXTRA_SOURCES, MMEB_V2_MEDIA_REPO, MMEB_V2_SOURCES,
                                     Source)
from ...data.readers.hub import data_files, file_columns
from ...data.readers.mmeb_v1 import REQUIRED_COLUMNS, read_mmeb_v1
from ...data.readers.mmeb_v2_video import PARSERS, read_mmeb_v2_video
from ...data.readers.visdoc import read_visdoc
from ...errors import InputError
from .base import Suite, SuiteOptions, register, select
from .layout import Check, Layout

MMEB_V1_REPO = "TIGER-Lab/MMEB-eval"
VISDOC_QUERY = "Find a document image that matches the given query:"  # vidore_dataset.py:9, visrag_dataset.py:10
VISDOC_TARGET = "Understand the content of the provided document image."  # vidore_dataset.py:10, visrag_dataset.py:11
VISDOC_COLUMNS = {"queries": ("query-id", "query"), "corpus": ("corpus-id", "image"),
                  "qrels": ("query-id", "corpus-id", "score")}
IMAGE_COLUMNS = ("qry_inst", "qry_text", "qry_img_path", "tgt_inst", "tgt_text", "tgt_img_path")  # image_t2i_eval.py:17
ALL_MMEB_V2 = {**MMEB_V2_SOURCES, **MMEB_V2_EXTRA_SOURCES}


def layout_of(data: Path, options: SuiteOptions) -> Layout:
    extra = options.extra
    return Layout(data, dict(extra.get("data_map") or {}), _path(extra.get("image_root")),
                  _path(extra.get("video_root")))


def _path(value) -> Path | None:
    return Path(value) if value else None


# ------------------------------------------------------------------------------------------------ MMEB-V1


def _v1_folder(layout: Layout) -> tuple[Path, list[Path]]:
    tried = layout.repo_candidates(MMEB_V1_REPO) + [layout.root]
    for folder in tried:
        if folder.is_dir() and any((folder / name).is_dir() for name in MMEB_V1_TASKS):
            return folder, tried
    raise InputError("no MMEB-V1 data set folder (e.g. ImageNet-1K/) found; tried " + ", ".join(f"'{p}'" for p in tried),
                     fix=f"huggingface-cli download {MMEB_V1_REPO} --repo-type dataset --local-dir ROOT/{MMEB_V1_REPO}")


def _v1_images(layout: Layout, folder: Path, names: list[str]) -> Path:
    """--image-root, else the first of <MMEB-eval>/eval_images, images/, <MMEB-eval> holding the first image."""
    tried = [layout.image_root] if layout.image_root else [folder / "eval_images", folder / "images", folder]
    sample = _first_image(folder, names)
    for root in tried:
        if root.is_dir() and (sample is None or (root / sample).exists()):
            return root
    raise InputError("image root not found; tried " + ", ".join(f"'{p}'" for p in tried)
                     + (f" for '{sample}'" if sample else ""),
                     fix="unzip MMEB-eval's images.zip (-> eval_images/) or pass --image-root")


def _first_image(folder: Path, names: list[str]) -> str | None:
    """The first query image path of the first data set (to tell which image root the tables mean)."""
    import pyarrow.parquet as pq

    for name in names:
        for file in sorted((folder / name).glob("*.parquet"))[:1]:
            try:
                values = pq.read_table(file, columns=["qry_img_path"]).column(0).to_pylist()
            except Exception:  # a broken table is reported by its reader
                return None
            return next((v for v in values if isinstance(v, str) and v.strip()), None)
    return None


def load_mmeb_v1(data: Path, options: SuiteOptions) -> list[EvalTask]:
    layout = layout_of(data, options)
    folder, _ = _v1_folder(layout)
    present = [name for name in MMEB_V1_TASKS if (folder / name).is_dir()]
    names = pick(options.datasets, list(MMEB_V1_TASKS), present, "mmeb-v1", folder)
    images = _v1_images(layout, folder, names)
    return [read_mmeb_v1(folder / name, images, name=name) for name in names]


def pick(requested: list[str] | None, known: list[str], present: list[str], suite: str, where: Path) -> list[str]:
    """The data sets to read: all present ones, or the requested ones (unknown names and missing folders
    are errors that say which, and how to see what each needs)."""
    if requested is None:
        return present
    names = select(known, requested, suite)  # unknown names: the error lists the suite's task names
    absent = [name for name in names if name not in present]
    if absent:
        raise InputError(f"data set(s) {absent} not found under '{where}'",
                         fix=f"run `uniembed eval --suite {suite} --data {where} --check` to see the folders and "
                             "files each data set needs")
    return names


def check_mmeb_v1(data: Path, options: SuiteOptions) -> list[Check]:
    layout = layout_of(data, options)
    try:
        folder, tried = _v1_folder(layout)
    except InputError:
        folder, tried = None, layout.repo_candidates(MMEB_V1_REPO) + [layout.root]
    checks = []
    for name in options.datasets or list(MMEB_V1_TASKS):
        check = Check(name, f"{MMEB_V1_REPO} ({name}/test-*.parquet)", None, tried, files=f"{name}/test-*.parquet",
                      columns=REQUIRED_COLUMNS)
        if folder is not None:
            check.folder = folder
            _check_files(check, folder / name, None, "test", REQUIRED_COLUMNS)
        checks.append(check)
    if folder is not None:
        image_tried = [layout.image_root] if layout.image_root else [folder / "eval_images", folder / "images"]
        image = next((p for p in image_tried if p.is_dir()), image_tried[0])
        for check in checks:
            check.media.append(("images", image, image.is_dir()))
    return checks


# ------------------------------------------------------------------------------------------------ MMEB-V2


def _v2_names(options: SuiteOptions) -> list[str]:
    if options.datasets is None:
        return list(MMEB_V2_SOURCES)
    return select(list(ALL_MMEB_V2), options.datasets, "mmeb-v2")


def _read_v2(source: Source, folder: Path, layout: Layout) -> EvalTask:
    if source.group == "image":
        images = layout.media_root(MMEB_V2_MEDIA_REPO, layout.image_root, "image-tasks", "MMEB-V2 image folder",
                                   "--image-root")
        task = read_mmeb_v1(data_files(folder, source.subset, source.split), images, name=source.task,
                            target_instructions=source.parser in ("image_t2i", "image_i2i_vg"))
    elif source.group == "video":
        task = read_mmeb_v2_video(folder, _video_media(layout) / source.frame_root, name=source.task, source=source)
    else:
        task = read_visdoc(folder, name=source.task, query_instruction=VISDOC_QUERY, target_instruction=VISDOC_TARGET,
                           split=source.split, language=source.language, reference_pairing=True,
                           meta_task=source.meta_task)
    task.modality_group = source.group
    return task


def _video_media(layout: Layout) -> Path:
    """The folder the reference's frame roots (`video-tasks/frames/...`) are relative to: --video-root, else
    the first of ROOT/TIGER-Lab/MMEB-V2, ROOT/MMEB-V2, ROOT that holds video-tasks/."""
    tried = [layout.video_root] if layout.video_root else layout.repo_candidates(MMEB_V2_MEDIA_REPO) + [layout.root]
    found = next((p for p in tried if (p / "video-tasks").is_dir()), None)
    if found is None:
        raise InputError("MMEB-V2 frame folder (video-tasks/frames/) not found; tried "
                         + ", ".join(f"'{p / 'video-tasks'}'" for p in tried),
                         fix=f"download {MMEB_V2_MEDIA_REPO} and unpack its frame archives (see docs/evaluation.md), "
                             "or pass --video-root")
    return found


def load_mmeb_v2(data: Path, options: SuiteOptions) -> list[EvalTask]:
    layout = layout_of(data, options)
    names = _v2_names(options)
    found = {name: layout.find_repo(ALL_MMEB_V2[name].repo, name) for name in names}
    present = [name for name in names if found[name] is not None]
    if not present:
        tried = sorted({str(p) for name in names[:3] for p in layout.repo_candidates(ALL_MMEB_V2[name].repo, name)})
        raise InputError("no MMEB-V2 repository folder found under the data root; looked for e.g. "
                         + ", ".join(tried), path=data,
                         fix="download the repositories listed by `uniembed eval --suite mmeb-v2 --data ROOT --check` "
                             "(one folder per repository, ROOT/<owner>/<name>), or pass --data-map")
    pick(options.datasets, list(ALL_MMEB_V2), present, "mmeb-v2", data)
    if len(present) < len(names):
        logging.getLogger(__name__).warning(
            "mmeb-v2: %d of %d data sets not found under %s and left out (e.g. %s); `--check` lists what each needs",
            len(names) - len(present), len(names), data, ", ".join(n for n in names if n not in present)[:200])
    return [_read_v2(ALL_MMEB_V2[name], found[name], layout) for name in present]


def check_mmeb_v2(data: Path, options: SuiteOptions) -> list[Check]:
    layout = layout_of(data, options)
    checks = []
    for name in _v2_names(options):
        source = ALL_MMEB_V2[name]
        folder = layout.find_repo(source.repo, name)
        subset = f", subset {source.subset}" if source.subset else ""
        check = Check(name, f"{source.repo}{subset}, split {source.split}", folder,
                      layout.repo_candidates(source.repo, name))
        if source.group == "visdoc":
            check.files = ", ".join(f"{c}/{source.split}-*.parquet" for c in VISDOC_COLUMNS)
            check.columns = tuple(f"{c}.{col}" for c, cols in VISDOC_COLUMNS.items() for col in cols) + \
                (("queries.language",) if source.language else ())
            if folder is not None:
                for config, columns in VISDOC_COLUMNS.items():
                    extra = ("language",) if source.language and config == "queries" else ()
                    _check_files(check, folder, config, source.split, columns + extra, label=config)
        else:
            columns = IMAGE_COLUMNS if source.group == "image" else PARSERS[source.parser].columns
            check.files = f"{source.subset + '/' if source.subset else ''}{source.split}-*.parquet (or .jsonl/.json)"
            check.columns = columns
            if folder is not None:
                _check_files(check, folder, source.subset, source.split, columns)
            if source.group == "image":
                roots = layout.media_candidates(MMEB_V2_MEDIA_REPO, layout.image_root, "image-tasks")
                image = next((p for p in roots if p.is_dir()), roots[0])
                check.media.append(("images", image, image.is_dir()))
            else:
                bases = [layout.video_root] if layout.video_root else layout.repo_candidates(MMEB_V2_MEDIA_REPO) + \
                    [layout.root]
                frames = next((b / source.frame_root for b in bases if (b / source.frame_root).is_dir()),
                              bases[0] / source.frame_root)
                check.media.append(("frames", frames, frames.is_dir()))
        checks.append(check)
    return checks


def _check_files(check: Check, folder: Path, subset: str | None, split: str | None, columns, label: str = "") -> None:
    try:
        if not folder.is_dir():
            raise InputError("folder not found", path=folder)
        files = data_files(folder, subset, split)
    except InputError as exc:
        check.problems.append(f"{label + ': ' if label else ''}{exc.problem}" + (f" ({exc.path})" if exc.path else ""))
        return
    found = file_columns(files[0])
    missing = [c for c in columns if c not in found]
    if missing:
        check.problems.append(f"{label + ': ' if label else ''}{files[0]} lacks column(s) {missing}; has {found}")


register(Suite("mmeb-v1", "MMEB-V1: 36 image tasks, hit@1 against each query's own candidates", load_mmeb_v1,
               layout="ROOT/TIGER-Lab/MMEB-eval/<Dataset>/test-*.parquet, images under its eval_images/ "
                      "(or --image-root)", check=check_mmeb_v1))
register(Suite("mmeb-v2", "MMEB-V2: 78 image, video and visual-document tasks", load_mmeb_v2,
               layout="ROOT/<owner>/<repo>/ per hub repository (see `--check`), frames and images in "
                      "ROOT/TIGER-Lab/MMEB-V2", check=check_mmeb_v2))
