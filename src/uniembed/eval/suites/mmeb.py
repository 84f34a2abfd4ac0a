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
Data sets of one's own: `--datasets` may name a folder outside the benchmark's names, in the MMEB-V1 table
layout (`<Name>/test-*.parquet`: qry_text, qry_img_path, tgt_text, tgt_img_path[, qry_inst, tgt_inst]).
mmeb-v1 reads it beside the benchmark's data set folders (same image root); mmeb-v2 reads ROOT/<Name> (or
its --data-map entry), images relative to --image-root, else the first of <Name>/images, <Name>, ROOT that
holds the first image. Such a task is grouped as "custom" (meta-task and modality) and left out of the
overall and of the published-score comparison (`aggregate.benchmark_results`).
"""
from __future__ import annotations

import logging
from pathlib import Path

from ...data.examples import EvalTask
from ...data.readers.catalog import (CUSTOM, MMEB_V1_TASKS, MMEB_V2_EXTRA_SOURCES, MMEB_V2_MEDIA_REPO,
                                     MMEB_V2_SOURCES, Source)
from ...data.readers.common import read_parquet
from ...data.readers.hub import data_files, file_columns
from ...data.readers.mmeb_v1 import REQUIRED_COLUMNS, read_mmeb_v1
from ...data.readers.mmeb_v2_video import PARSERS, read_mmeb_v2_video
from ...data.readers.visdoc import read_visdoc
from ...errors import ConfigError, InputError
from ...extras import import_optional
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


def _v1_folder(layout: Layout, requested: list[str] | None = None) -> tuple[Path, list[Path]]:
    """The MMEB-eval copy: the first candidate holding a benchmark data set folder or a requested one."""
    tried = layout.repo_candidates(MMEB_V1_REPO) + [layout.root]
    names = [*MMEB_V1_TASKS, *(requested or [])]
    for folder in tried:
        if folder.is_dir() and any((folder / name).is_dir() for name in names):
            return folder, tried
    own = [name for name in requested or [] if name not in MMEB_V1_TASKS]
    raise InputError("no MMEB-V1 data set folder (e.g. ImageNet-1K/" + "".join(f", {name}/" for name in own)
                     + ") found; tried " + ", ".join(f"'{p}'" for p in tried),
                     fix=f"huggingface-cli download {MMEB_V1_REPO} --repo-type dataset --local-dir ROOT/{MMEB_V1_REPO}"
                         "; a data set of one's own in the MMEB layout is read when --datasets names its folder")


def _v1_images(layout: Layout, folder: Path, names: list[str]) -> Path:
    """--image-root, else the first of <MMEB-eval>/eval_images, images/, <MMEB-eval> holding the first image."""
    tried = [layout.image_root] if layout.image_root else [folder / "eval_images", folder / "images", folder]
    return _image_root(tried, _first_image(folder, names), "unzip MMEB-eval's images.zip (-> eval_images/) or pass "
                                                           "--image-root")


def _image_root(tried: list[Path], sample: str | None, fix: str) -> Path:
    """The first folder of `tried` that holds `sample` (a table's first image path), or just exists."""
    for root in tried:
        if root.is_dir() and (sample is None or (root / sample).exists()):
            return root
    raise InputError("image root not found; tried " + ", ".join(f"'{p}'" for p in tried)
                     + (f" for '{sample}'" if sample else ""), fix=fix)


def _first_image(folder: Path, names: list[str]) -> str | None:
    """The first query image path of the first data set (to tell which image root the tables mean)."""
    return next((_first_table_image(files[0]) for name in names
                 for files in [sorted((folder / name).glob("*.parquet"))] if files), None)


def _first_table_image(file: Path) -> str | None:
    import_optional("pyarrow.parquet", "reading MMEB's parquet tables")
    try:
        values = read_parquet(file, ["qry_img_path"]).column(0).to_pylist()
    except Exception:  # a broken table is reported by its reader
        return None
    return next((v for v in values if isinstance(v, str) and v.strip()), None)


def load_mmeb_v1(data: Path, options: SuiteOptions) -> list[EvalTask]:
    layout = layout_of(data, options)
    folder, _ = _v1_folder(layout, options.datasets)
    present = [name for name in MMEB_V1_TASKS if (folder / name).is_dir()]
    custom = _custom_names(options.datasets, MMEB_V1_TASKS, lambda name: folder / name)
    names = pick(options.datasets, list(MMEB_V1_TASKS) + custom, present + custom, "mmeb-v1", folder)
    images = _v1_images(layout, folder, names)
    return [_as_custom(read_mmeb_v1(folder / name, images, name=name)) if name in custom
            else read_mmeb_v1(folder / name, images, name=name) for name in names]


def _custom_names(requested: list[str] | None, known, folder_of) -> list[str]:
    """Requested names outside the benchmark whose folder exists: data sets of one's own in the MMEB layout."""
    return [name for name in requested or [] if name not in known and folder_of(name).is_dir()]


def _as_custom(task: EvalTask) -> EvalTask:
    """A data set of one's own: grouped as "custom" and left out of the benchmark's overall and the
    published-score comparison (`aggregate.benchmark_results`)."""
    task.meta_task = task.modality_group = CUSTOM
    task.in_distribution = None
    return task


def pick(requested: list[str] | None, known: list[str], present: list[str], suite: str, where: Path) -> list[str]:
    """The data sets to read: all present ones, or the requested ones (unknown names and missing folders
    are errors that say which, and how to see what each needs)."""
    if requested is None:
        return present
    names = _known(requested, known, suite, where)
    absent = [name for name in names if name not in present]
    if absent:
        raise InputError(f"data set(s) {absent} not found under '{where}'",
                         fix=f"run `uniembed eval --suite {suite} --data {where} --check` to see the folders and "
                             "files each data set needs")
    return names


def _known(requested: list[str], known: list[str], suite: str, where: Path) -> list[str]:
    """The requested names in the suite's order; a name that is neither a data set of the benchmark nor a
    folder of one's own (already in `known`) is an error that lists the benchmark's names."""
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise ConfigError(f"suite {suite} has no data set(s) {unknown}, and '{where}' has no folder of that name "
                          f"(a data set of one's own in the MMEB layout is read from its folder); the benchmark's "
                          f"data sets: {', '.join(name for name in known if name not in requested)}")
    return select(known, requested, suite)


def check_mmeb_v1(data: Path, options: SuiteOptions) -> list[Check]:
    layout = layout_of(data, options)
    try:
        folder, tried = _v1_folder(layout, options.datasets)
    except InputError:
        folder, tried = None, layout.repo_candidates(MMEB_V1_REPO) + [layout.root]
    checks = []
    for name in options.datasets or list(MMEB_V1_TASKS):
        origin = MMEB_V1_REPO if name in MMEB_V1_TASKS else "a data set of one's own"
        check = Check(name, f"{origin} ({name}/test-*.parquet)", None, tried, files=f"{name}/test-*.parquet",
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


def _v2_sources(layout: Layout, options: SuiteOptions) -> dict[str, Source]:
    """name -> Source of the data sets to read: the 78 (or the requested ones, the ViDoRe-v2 English halves
    included), and requested folders of one's own in the MMEB image-task layout."""
    if options.datasets is None:
        return dict(MMEB_V2_SOURCES)
    custom = {name: Source(name, "image", CUSTOM, name, None, "test", "image_i2i_vg", "local")
              for name in options.datasets if name not in ALL_MMEB_V2 and layout.find_repo(name, name) is not None}
    known = {**ALL_MMEB_V2, **custom}
    return {name: known[name] for name in _known(options.datasets, list(known), "mmeb-v2", layout.root)}


def _read_v2(source: Source, folder: Path, layout: Layout) -> EvalTask:
    if source.meta_task == CUSTOM:
        files = data_files(folder, source.subset, source.split)
        tried = [layout.image_root] if layout.image_root else [folder / "images", folder, layout.root]
        images = _image_root(tried, _first_table_image(files[0]) if files[0].suffix == ".parquet" else None,
                             "put the images beside the table (or in its images/ folder) or pass --image-root")
        return _as_custom(read_mmeb_v1(files, images, name=source.task))
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
    sources = _v2_sources(layout, options)
    names = list(sources)
    found = {name: layout.find_repo(sources[name].repo, name) for name in names}
    present = [name for name in names if found[name] is not None]
    if not present:
        tried = sorted({str(p) for name in names[:3] for p in layout.repo_candidates(sources[name].repo, name)})
        raise InputError("no MMEB-V2 repository folder found under the data root; looked for e.g. "
                         + ", ".join(tried), path=data,
                         fix="download the repositories listed by `uniembed eval --suite mmeb-v2 --data ROOT --check` "
                             "(one folder per repository, ROOT/<owner>/<name>), or pass --data-map")
    pick(options.datasets, names, present, "mmeb-v2", data)
    if len(present) < len(names):
        logging.getLogger(__name__).warning(
            "mmeb-v2: %d of %d data sets not found under %s and left out (e.g. %s); `--check` lists what each needs",
            len(names) - len(present), len(names), data, ", ".join(n for n in names if n not in present)[:200])
    return [_read_v2(sources[name], found[name], layout) for name in present]


def check_mmeb_v2(data: Path, options: SuiteOptions) -> list[Check]:
    layout = layout_of(data, options)
    checks = []
    for name, source in _v2_sources(layout, options).items():
        folder = layout.find_repo(source.repo, name)
        subset = f", subset {source.subset}" if source.subset else ""
        origin = "a data set of one's own" if source.meta_task == CUSTOM else source.repo
        check = Check(name, f"{origin}{subset}, split {source.split}", folder,
                      layout.repo_candidates(source.repo, name))
        if source.meta_task == CUSTOM:
            check.files, check.columns = f"{source.split}-*.parquet (or .jsonl/.json)", REQUIRED_COLUMNS
            if folder is not None:
                _check_files(check, folder, None, source.split, REQUIRED_COLUMNS)
        elif source.group == "visdoc":
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
