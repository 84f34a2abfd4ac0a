"""Zero-shot suites users report: CIRCO, FashionIQ, text-video, long captions, SugarCrepe.

Each data set is read from its official release exactly as it unpacks, under `--data ROOT`: the release folder
itself, `ROOT/<folder name>` (the names below, tried in order), or the folder a `--data-map` YAML gives for the
data set's name. `--image-root` / `--video-root` replace the media folder. Every layout fact names its source.

circo: the miccunifi/CIRCO clone plus COCO 2017 unlabeled (miccunifi/CIRCO@075e16c README.md "Data Structure";
    read as src/dataset.py:41-52 @65b3af6 does):
    DIR/annotations/val.json       list of {"id", "reference_img_id", "relative_caption", "gt_img_ids", ...}
    DIR/COCO2017_unlabeled/annotations/image_info_unlabeled2017.json   {"images": [{"id", "file_name"}, ...]}
    DIR/COCO2017_unlabeled/unlabeled2017/<file_name>
    The pool is every image of image_info_unlabeled2017.json (the reference image stays in it); mAP@5/10/25/50
    with AP@k = sum of precision at the hits in the top k / min(#gt, k) (chaxjli/U-MARVEL@2f8afed
    eval/eval_zeroshot/eval_circo.py:182-190). test.json has no gt_img_ids (README: scored by the CIRCO server),
    so the suite scores val.json, as U-MARVEL's eval_zeroshot.sh runs it (`--split val`).
fashioniq: the official FashionIQ release (XiaoxiaoGuo/fashion-iq; read as miccunifi/SEARLE@a9c314b
    src/datasets.py:57,73,85 does):
    DIR/captions/cap.<dress|shirt|toptee>.val.json   list of {"candidate", "target", "captions": [a, b]}
    DIR/image_splits/split.<category>.val.json        list of image names (the pool of that category)
    DIR/images/<name>.jpg (or .png)
    Query = reference image + "<a> and <b>", each stripped of '.?, ' (SEARLE src/validate.py:46); R@10 and R@50
    per category (validate.py:104-105); the summary averages the categories.
text-video (the CLIP4Clip releases, ArrowLuo/CLIP4Clip@508ffa3 README.md "Data Preparing"):
    DIR/MSR-VTT/MSRVTT_JSFUSION_test.csv   (or in msrvtt_data/, annotations/) columns key,vid_key,video_id,
                                           sentence (1K-A: one sentence a video;
                                           dataloaders/dataloader_msrvtt_retrieval.py:29, U-MARVEL
                                           dataset/datasets_msrvtt.py:24-29)
    DIR/MSR-VTT/videos/all/<video_id>.mp4  (or videos/, MSRVTT_Videos/; U-MARVEL datasets_msrvtt.py:45)
    DIR/MSVD/test_list.txt, DIR/MSVD/raw-captions.pkl (or in msvd_data/)   {video id: [[token, ...], ...]};
                                           a caption is its tokens joined by spaces
                                           (dataloader_msvd_retrieval.py:45-52,70;
                                           U-MARVEL datasets_msvd.py:26-36)
    DIR/MSVD/YouTubeClips/<id>.avi         (or MSVD_Videos/; found by file stem, dataloader_msvd_retrieval.py:55-60)
    DIR/DiDeMo/test_list.txt, DIR/DiDeMo/test_data.json   [{"video", "description", "times", ...}]; all
                                           descriptions of a video joined by spaces are its one paragraph
                                           (dataloader_didemo_retrieval.py:45-85)
    DIR/DiDeMo/DiDeMo_Videos/<video>       (or videos/; found by file name, videos without a file are left out
                                           as the reference does, dataloader_didemo_retrieval.py:88-98)
    Tasks "<name> t2v" and "<name> v2t"; R@1/5/10 hit-style (a query counts once any positive is in the top
    k, U-MARVEL eval/eval_zeroshot/eval_msrvtt.py:186-190) and median rank. Frames: 2 fps, at most 768
    (`TEXT_VIDEO_SAMPLING`, U-MARVEL's qwen-vl-utils defaults).
long-captions (the layouts U-MARVEL's eval reads, scripts/eval/bash/eval_zeroshot.sh:78-79,196-197):
    DIR/ShareGPT4V-1K/datas_for_validation.json   list of {"image_name", "caption"} (datasets_sharegpt4v.py:24-27)
    DIR/ShareGPT4V-1K/val_data/<image_name>
    DIR/Urban1K/caption/<i>.txt (first line), DIR/Urban1K/image/<i>.jpg for i = 1..N (the reference: N = 1000;
                                           datasets_urban1k.py:24-26,94-96)
    Tasks "<name> t2i" and "<name> i2t", R@1 (also R@5/10, eval_sharegpt4v.py:177-191).
sugarcrepe: the RAIVNLab/sugar-crepe clone plus COCO val2017 (U-MARVEL eval_zeroshot.sh:104-184):
    DIR/data/<subset>.json   {id: {"filename", "caption", "negative_caption"}} for add_att, add_obj, replace_att,
                             replace_obj, replace_rel, swap_att, swap_obj (those present are used)
    DIR/images/val2017/<filename>  (or DIR/val2017/)
    Accuracy = share of images with sim(image, caption) > sim(image, negative_caption), strictly (U-MARVEL
    eval/eval_zeroshot/eval_sugar_crepe.py:163-164): each query ranks [negative, true]; a tie counts as wrong.

Instructions are U-MARVEL's (chaxjli/U-MARVEL@2f8afed; it wraps them in its own instruction tokens, which the
model profile's formatting replaces here); a side the reference gives none gets none.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import pickle
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ...data.examples import EvalTask
from ...errors import InputError
from ...inputs import Item
from ..aggregate import group_means, mean
from ..runner import TaskResult
from .base import Suite, SuiteOptions, register, select
from .layout import Check

log = logging.getLogger(__name__)

FASHIONIQ_CATEGORIES = ("dress", "shirt", "toptee")
SUGARCREPE_SUBSETS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
MEDIA_SUFFIXES = {"image": (".jpg", ".jpeg", ".png"), "video": (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")}

# Query-side instructions (None: the reference gives that side none), chaxjli/U-MARVEL@2f8afed dataset/...
CIRCO_INSTRUCTION = "I'm looking for a similar everyday image with the described changes."  # datasets_circo.py:100
T2V_INSTRUCTION = "Find an everyday video match with caption."  # datasets_msrvtt.py:96, datasets_msvd.py:103
T2I_INSTRUCTION = "Find me an everyday image that matches the given caption."  # datasets_sharegpt4v.py:92
I2T_INSTRUCTION = "Find an image caption describing the following everyday image."  # datasets_urban1k.py:90
SUGARCREPE_INSTRUCTION = "Find an image caption describing the following image."  # datasets_sugar_crepe.py:93
# datasets_sugar_crepe.py:92-97: only these four subsets give the image query the instruction
SUGARCREPE_INSTRUCTED = ("add_att", "add_obj", "replace_att", "replace_obj")
# U-MARVEL passes its videos to qwen-vl-utils without nframes, so they are sampled at 2 fps, at least 4 and at most
# 768 frames, an even count (collators/eval_collator.py:4, collators/qwen2_vision_process.py:23-26)
TEXT_VIDEO_SAMPLING = {"fps": 2.0, "num_frames": 768}


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


# ---- shared helpers ----------------------------------------------------------------------------------

def read_json(path: Path):
    if not path.is_file():
        raise InputError("file not found", path=path, fix="check the suite's expected layout (uniembed eval --check)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg} at line {exc.lineno})", path=path) from exc


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError("file not found", path=path, fix="check the suite's expected layout (uniembed eval --check)")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class _PlainUnpickler(pickle.Unpickler):
    """raw-captions.pkl holds only dicts, lists and strings: refuse anything that would import code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only plain containers are expected)")


def _read_pickle(path: Path):
    if not path.is_file():
        raise InputError("file not found", path=path, fix="check the suite's expected layout (uniembed eval --check)")
    try:
        return _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise InputError(f"not a captions pickle ({exc})", path=path) from exc


def _path(value) -> Path | None:
    return Path(os.path.expanduser(str(value))) if value else None


def folder_candidates(release: Release, data: Path, options: SuiteOptions) -> list[Path]:
    """The data map's folder for the data set, then ROOT/<folder> for each name, then ROOT itself."""
    data_map = (options.extra or {}).get("data_map") or {}
    mapped = [Path(data_map[release.name])] if release.name in data_map else []
    return mapped + [data / name for name in release.folders] + [data]


def find_folder(release: Release, data: Path, options: SuiteOptions) -> Path | None:
    """The first candidate folder holding the release's first file."""
    return next((p for p in folder_candidates(release, data, options)
                 if any((p / sub / release.files[0]).is_file() for sub in release.subdirs)), None)


def file_path(release: Release, folder: Path, index: int) -> Path:
    """The release's `index`-th file, in the first of its subfolders that holds the first file."""
    sub = next((d for d in release.subdirs if (folder / d / release.files[0]).is_file()), release.subdirs[0])
    return folder / sub / release.files[index]


def media_candidates(release: Release, folder: Path, options: SuiteOptions) -> list[Path]:
    flag = _path((options.extra or {}).get(f"{release.kind}_root"))
    return [flag] if flag is not None else [folder / m for m in release.media]


def media_folder(release: Release, folder: Path, options: SuiteOptions) -> Path:
    tried = media_candidates(release, folder, options)
    found = next((p for p in tried if p.is_dir()), None)
    if found is None:
        raise InputError(f"{release.name}: {release.kind} folder not found; tried "
                         + ", ".join(f"'{p}'" for p in tried),
                         fix=f"unpack the {release.kind}s there or pass --{release.kind}-root")
    return found


def by_name(folder: Path, kind: str, stem: bool) -> dict[str, Path]:
    """Media files below `folder` (recursively) by file stem or full file name, as CLIP4Clip finds its videos."""
    found: dict[str, Path] = {}
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            if Path(name).suffix.lower() in MEDIA_SUFFIXES[kind]:
                found.setdefault(Path(name).stem if stem else name, Path(root) / name)
    return found


def existing(path: Path, where: Path, row: int | None = None) -> Path:
    if not path.is_file():
        raise InputError(f"media file {path.name} not found", path=where, row=row, fix=f"expected at {path}")
    return path


def _field(row, keys: Sequence[str], path: Path, n: int) -> list:
    if not isinstance(row, dict):
        raise InputError(f"entry is a {type(row).__name__}, not an object with {list(keys)}", path=path, row=n)
    missing = [k for k in keys if k not in row]
    if missing:
        raise InputError(f"entry lacks key(s) {missing}", path=path, row=n, fix=f"each entry needs {list(keys)}")
    return [row[k] for k in keys]


def check_releases(releases: Sequence[Release], data: Path, options: SuiteOptions, load_one: Callable) -> list[Check]:
    """`--check` rows: per data set its files, keys and media folder, and what loading it reports."""
    checks = []
    for release in releases:
        folder = find_folder(release, data, options)
        check = Check(release.name, release.source, folder, folder_candidates(release, data, options),
                      files=", ".join(release.files), columns=release.keys)
        if folder is not None:
            for index in range(1, len(release.files)):
                if not file_path(release, folder, index).exists():
                    check.problems.append(f"{file_path(release, folder, index)} not found")
            tried = media_candidates(release, folder, options)
            found = next((p for p in tried if p.is_dir()), None)
            check.media.append((f"{release.kind}s", found or tried[0], found is not None))
            if not check.problems and found is not None:
                try:
                    load_one(release, folder, options)
                except InputError as exc:
                    check.problems.append(str(exc))
        checks.append(check)
    return checks


# ---- CIRCO -------------------------------------------------------------------------------------------

CIRCO = Release("CIRCO", ("CIRCO", "circo"),  # "circo": U-MARVEL README.md:61
                ("annotations/val.json", "COCO2017_unlabeled/annotations/image_info_unlabeled2017.json"),
                ("id", "reference_img_id", "relative_caption", "gt_img_ids", "images[].id", "images[].file_name"),
                ("COCO2017_unlabeled/unlabeled2017",), instructions={"composed": CIRCO_INSTRUCTION},
                source="miccunifi/CIRCO (git clone) + COCO 2017 unlabeled images and image info")


def read_circo(release: Release, folder: Path, options: SuiteOptions) -> list[EvalTask]:
    annotations_path, info_path = (folder / f for f in release.files)
    annotations = read_json(annotations_path)
    info = read_json(info_path)
    images = info.get("images") if isinstance(info, dict) else None
    if not isinstance(images, list):
        raise InputError('no "images" list', path=info_path, fix="use COCO's image_info_unlabeled2017.json")
    image_dir = media_folder(release, folder, options)
    ids, paths = [], []
    for n, entry in enumerate(images, 1):
        image_id, file_name = _field(entry, ("id", "file_name"), info_path, n)
        ids.append(str(image_id))
        paths.append(image_dir / str(file_name))
    position = {image_id: i for i, image_id in enumerate(ids)}
    queries, qrels, query_ids = [], [], []
    for n, row in enumerate(annotations, 1):
        if isinstance(row, dict) and "gt_img_ids" not in row:
            raise InputError("annotation has no gt_img_ids (CIRCO's test split is scored by its server)",
                             path=annotations_path, row=n, fix="use the val split's annotations/val.json")
        query_id, reference, caption, targets = _field(row, release.keys[:4], annotations_path, n)
        missing = [str(t) for t in [reference, *targets] if str(t) not in position]
        if missing:
            raise InputError(f"image id(s) {missing} not in {info_path.name}", path=annotations_path, row=n)
        reference_path = existing(paths[position[str(reference)]], annotations_path, n)
        queries.append(Item(text=str(caption), image=str(reference_path),
                            instruction=release.instructions["composed"]))
        qrels.append({position[str(t)]: 1.0 for t in targets})
        query_ids.append(str(query_id))
    candidates = [Item(image=str(existing(p, info_path, n))) for n, p in enumerate(paths, 1)]
    return [EvalTask("CIRCO", queries, candidates, qrels, metric="map@5", meta_task="composed retrieval",
                     modality_group="image", query_ids=query_ids, candidate_ids=ids,
                     extra_metrics=("map@10", "map@25", "map@50"))]


def load_circo(data: Path, options: SuiteOptions) -> list[EvalTask]:
    select(["CIRCO"], options.datasets, "circo")
    folder = find_folder(CIRCO, data, options)
    if folder is None:
        tried = ", ".join(str(p) for p in folder_candidates(CIRCO, data, options))
        raise InputError(f"no {CIRCO.files[0]}; tried {tried}",
                         path=data, fix="point --data at the CIRCO clone (annotations/, COCO2017_unlabeled/)")
    return read_circo(CIRCO, folder, options)


# ---- FashionIQ ---------------------------------------------------------------------------------------

FASHIONIQ = {c: Release(f"FashionIQ-{c}", ("FashionIQ", "fashionIQ_dataset", "fashion-iq"),
                        (f"captions/cap.{c}.val.json", f"image_splits/split.{c}.val.json"),
                        ("candidate", "target", "captions"), ("images",), instructions={"composed": None},
                        source="XiaoxiaoGuo/fashion-iq release (captions/, image_splits/, images/)")
             for c in FASHIONIQ_CATEGORIES}


def _fashion_image(image_dir: Path, name: str, where: Path, row: int | None) -> Path:
    for suffix in (".jpg", ".png"):  # SEARLE src/datasets.py:85 (.jpg); some downloads keep .png
        path = image_dir / f"{name}{suffix}"
        if path.is_file():
            return path
    raise InputError(f"image {name} (.jpg or .png) not found under {image_dir}", path=where, row=row)


def fashioniq_query_text(captions: Sequence[str]) -> str:
    """Two relative captions as SEARLE joins them (src/validate.py:46)."""
    return " and ".join(str(c).strip(".?, ") for c in captions)


def read_fashioniq(release: Release, folder: Path, options: SuiteOptions) -> list[EvalTask]:
    caption_path, split_path = (folder / f for f in release.files)
    image_dir = media_folder(release, folder, options)
    pool = [str(i) for i in read_json(split_path)]
    position = {name: i for i, name in enumerate(pool)}
    candidates = [Item(image=str(_fashion_image(image_dir, name, split_path, n))) for n, name in enumerate(pool, 1)]
    queries, qrels = [], []
    for n, row in enumerate(read_json(caption_path), 1):
        reference, target, captions = _field(row, release.keys, caption_path, n)
        if str(target) not in position:
            raise InputError(f"target {target} is not in {split_path.name}", path=caption_path, row=n)
        queries.append(Item(text=fashioniq_query_text(captions),
                            image=str(_fashion_image(image_dir, str(reference), caption_path, n)),
                            instruction=release.instructions["composed"]))
        qrels.append({position[str(target)]: 1.0})
    return [EvalTask(release.name, queries, candidates, qrels, metric="hit@10", meta_task="composed retrieval",
                     modality_group="image", candidate_ids=pool, extra_metrics=("hit@50",))]


def load_fashioniq(data: Path, options: SuiteOptions) -> list[EvalTask]:
    names = [r.name for r in FASHIONIQ.values()]
    present = [r.name for r in FASHIONIQ.values() if find_folder(r, data, options)]
    wanted = select(names, _with_prefix(options.datasets, "FashionIQ-"), "fashioniq")
    tasks = []
    for release in FASHIONIQ.values():
        if release.name not in wanted or (options.datasets is None and release.name not in present):
            continue
        folder = find_folder(release, data, options)
        if folder is None:
            raise InputError(f"no {release.files[0]}", path=data, fix="point --data at the FashionIQ release")
        tasks += read_fashioniq(release, folder, options)
    return tasks


def summarize_fashioniq(results: Sequence[TaskResult]) -> dict[str, float]:
    r10 = mean([r.metrics["hit@10"] for r in results])
    r50 = mean([r.metrics["hit@50"] for r in results])
    return {"R@10 (mean of categories)": r10, "R@50 (mean of categories)": r50,
            "average of R@10 and R@50": (r10 + r50) / 2}


# ---- paired suites: text-video and long captions -----------------------------------------------------

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


def read_msrvtt(release: Release, folder: Path) -> tuple[list[Path], list[list[str]]]:
    path = file_path(release, folder, 0)
    if not path.is_file():
        raise InputError("file not found", path=path)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("video_id", "sentence") if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"no column(s) {missing}; has {reader.fieldnames}", path=path,
                             fix="use the JSFusion 1K-A test csv (key,vid_key,video_id,sentence)")
        rows = [(n, row["video_id"], row["sentence"]) for n, row in enumerate(reader, 2)]
    return [Path(f"{vid}.mp4") for _, vid, _ in rows], [[str(s)] for _, _, s in rows]


def read_msvd(release: Release, folder: Path) -> tuple[list[str], list[list[str]]]:
    ids = _read_lines(file_path(release, folder, 0))
    captions_path = file_path(release, folder, 1)
    captions = _read_pickle(captions_path)
    if not isinstance(captions, dict):
        raise InputError(f"expected a dict of video id -> captions, got {type(captions).__name__}", path=captions_path)
    missing = [i for i in ids if i not in captions]
    if missing:
        raise InputError(f"no captions for video(s) {missing[:5]}", path=captions_path)
    texts = [[" ".join(cap) if isinstance(cap, (list, tuple)) else str(cap) for cap in captions[i]] for i in ids]
    return ids, texts


def read_didemo(release: Release, folder: Path) -> tuple[list[str], list[list[str]]]:
    ids = _read_lines(file_path(release, folder, 0))
    wanted = set(ids)
    data_path = file_path(release, folder, 1)
    paragraphs: dict[str, list[str]] = defaultdict(list)
    for n, row in enumerate(read_json(data_path), 1):
        video, description = _field(row, ("video", "description"), data_path, n)
        if video in wanted:
            paragraphs[str(video)].append(str(description))
    ids = [i for i in ids if i in paragraphs]
    return ids, [[" ".join(paragraphs[i])] for i in ids]


def read_text_video(release: Release, folder: Path, options: SuiteOptions) -> list[EvalTask]:
    video_dir = media_folder(release, folder, options)
    where = file_path(release, folder, 0)
    if release.name == "MSR-VTT":
        names, captions = read_msrvtt(release, folder)
        videos = [existing(video_dir / name, where, n) for n, name in enumerate(names, 2)]
    else:
        ids, captions = (read_msvd if release.name == "MSVD" else read_didemo)(release, folder)
        found = by_name(video_dir, "video", stem=release.name == "MSVD")
        if release.name == "DiDeMo":  # the reference keeps only the videos it finds (loader lines 88-98)
            keep = [i for i, vid in enumerate(ids) if vid in found]
            if len(keep) < len(ids):
                log.warning("DiDeMo: %d of %d test videos have no file under %s; left out as the reference does",
                            len(ids) - len(keep), len(ids), video_dir)
            ids, captions = [ids[i] for i in keep], [captions[i] for i in keep]
        missing = [i for i in ids if i not in found]
        if missing:
            raise InputError(f"video(s) {missing[:5]} not found under {video_dir}", path=where,
                             fix="unpack the videos there or pass --video-root")
        videos = [found[i] for i in ids]
    return paired_tasks(release, [Item(video=str(v)) for v in videos], captions, "t2v", "v2t",
                        ("hit@5", "hit@10", "median_rank"))


_CLIP4CLIP = "ArrowLuo/CLIP4Clip release"
TEXT_VIDEO = {r.name: r for r in (
    Release("MSR-VTT", ("MSR-VTT", "msrvtt", "MSRVTT"), ("MSRVTT_JSFUSION_test.csv",),
            ("key", "vid_key", "video_id", "sentence"), ("videos/all", "videos", "MSRVTT_Videos"), "video",
            {"t2v": T2V_INSTRUCTION, "v2t": None}, f"{_CLIP4CLIP} msrvtt_data.zip + MSRVTT videos",
            ("", "msrvtt_data", "annotations")),  # the zip's folder; U-MARVEL eval_zeroshot.sh:249 annotations/
    Release("MSVD", ("MSVD", "msvd"), ("test_list.txt", "raw-captions.pkl"), ("video id -> [[token, ...]]",),
            ("YouTubeClips", "MSVD_Videos", "videos"), "video", {"t2v": T2V_INSTRUCTION, "v2t": None},
            f"{_CLIP4CLIP} msvd_data.zip + YouTubeClips", ("", "msvd_data")),
    # U-MARVEL does not evaluate DiDeMo: its MSR-VTT instruction is used (not from a DiDeMo reference)
    Release("DiDeMo", ("DiDeMo", "didemo"), ("test_list.txt", "test_data.json"), ("video", "description"),
            ("DiDeMo_Videos", "videos"), "video", {"t2v": T2V_INSTRUCTION, "v2t": None},
            "LisaAnne/LocalizingMoments test_data.json + collaborative-experts test_list.txt + videos"))}


def read_sharegpt4v(release: Release, folder: Path, image_dir: Path) -> tuple[list[Path], list[list[str]]]:
    path = folder / release.files[0]
    rows = read_json(path)
    pairs = [_field(row, release.keys, path, n) for n, row in enumerate(rows, 1)]
    return ([existing(image_dir / str(name), path, n) for n, (name, _) in enumerate(pairs, 1)],
            [[str(caption)] for _, caption in pairs])


def read_urban1k(release: Release, folder: Path, image_dir: Path) -> tuple[list[Path], list[list[str]]]:
    caption_dir = folder / "caption"
    numbers = sorted(int(p.stem) for p in caption_dir.glob("*.txt") if p.stem.isdigit())
    if not numbers or numbers != list(range(1, len(numbers) + 1)):
        raise InputError("captions must be 1.txt .. N.txt (the reference reads 1..1000)", path=caption_dir)
    images, captions = [], []
    for i in numbers:
        path = caption_dir / f"{i}.txt"
        lines = path.read_text(encoding="utf-8").splitlines()
        captions.append([lines[0].strip() if lines else ""])  # datasets_urban1k.py:95-96: the first line
        images.append(existing(image_dir / f"{i}.jpg", path))
    return images, captions


LONG_CAPTIONS = {r.name: r for r in (
    Release("ShareGPT4V-1K", ("ShareGPT4V-1K", "sharegpt4v"), ("datas_for_validation.json",), ("image_name", "caption"),
            ("val_data",), "image", {"t2i": T2I_INSTRUCTION, "i2t": None},  # datasets_sharegpt4v.py:89-94
            "ShareGPT4V-1K as U-MARVEL reads it (datas_for_validation.json + val_data/)"),
    Release("Urban1K", ("Urban1K", "Urban1k"), ("caption/1.txt",), ("<i>.txt first line", "<i>.jpg"), ("image",),
            "image", {"t2i": None, "i2t": I2T_INSTRUCTION},  # datasets_urban1k.py:88-97
            "Urban1k release (image/, caption/)"))}


def read_long_captions(release: Release, folder: Path, options: SuiteOptions) -> list[EvalTask]:
    image_dir = media_folder(release, folder, options)
    read = read_sharegpt4v if release.name == "ShareGPT4V-1K" else read_urban1k
    images, captions = read(release, folder, image_dir)
    return paired_tasks(release, [Item(image=str(p)) for p in images], captions, "t2i", "i2t", ("hit@5", "hit@10"))


def load_paired(releases: dict[str, Release], read: Callable, suite: str) -> Callable:
    def load(data: Path, options: SuiteOptions) -> list[EvalTask]:
        present = [name for name, r in releases.items() if find_folder(r, data, options)]
        tasks = []
        for name in select(present, _base_names(options.datasets), suite):
            tasks += read(releases[name], find_folder(releases[name], data, options), options)
        return tasks
    return load


# ---- SugarCrepe --------------------------------------------------------------------------------------

SUGARCREPE = {s: Release(s, ("sugar-crepe", "SugarCrepe"), (f"data/{s}.json",),
                         ("filename", "caption", "negative_caption"),
                         ("images/val2017", "val2017"), "image",
                         {"i2t": SUGARCREPE_INSTRUCTION if s in SUGARCREPE_INSTRUCTED else None},
                         "RAIVNLab/sugar-crepe (git clone) + COCO val2017 images")
              for s in SUGARCREPE_SUBSETS}


def read_sugarcrepe(release: Release, folder: Path, options: SuiteOptions) -> list[EvalTask]:
    path = folder / release.files[0]
    image_dir = media_folder(release, folder, options)
    entries = read_json(path)
    if not isinstance(entries, dict):
        raise InputError("expected an object {id: {filename, caption, negative_caption}}", path=path)
    queries, candidates, lists, index_of = [], [], [], {}

    def caption_index(text: str) -> int:
        if text not in index_of:
            index_of[text] = len(candidates)
            candidates.append(Item(text=text))
        return index_of[text]

    for n, row in enumerate(entries.values(), 1):
        filename, true, false = _field(row, release.keys, path, n)
        queries.append(Item(image=str(existing(image_dir / str(filename), path, n)),
                            instruction=release.instructions["i2t"]))
        lists.append([caption_index(str(false)), caption_index(str(true))])
    return [EvalTask(release.name, queries, candidates, [{1: 1.0}] * len(queries), metric="hit@1",
                     candidate_lists=lists, meta_task=release.name.split("_")[0], modality_group="image", chance=0.5)]


# ---- names and registration --------------------------------------------------------------------------

def _with_prefix(names: list[str] | None, prefix: str) -> list[str] | None:
    """Accept "dress" or "FashionIQ-dress" in --datasets."""
    return None if names is None else [n if n.startswith(prefix) else prefix + n for n in names]


def _base_names(names: list[str] | None) -> list[str] | None:
    """Accept "MSR-VTT" or "MSR-VTT t2v" in --datasets."""
    return None if names is None else sorted({n.rsplit(" ", 1)[0] if " " in n else n for n in names})


def _checker(releases: Sequence[Release], read: Callable, names: Callable = lambda o: None) -> Callable:
    def check(data: Path, options: SuiteOptions) -> list[Check]:
        wanted = names(options)
        chosen = [r for r in releases if wanted is None or r.name in wanted]
        return check_releases(chosen, data, options, read)
    return check


register(Suite("circo", "CIRCO composed image retrieval (mAP@5/10/25/50)", load_circo,
               layout="DIR/annotations/val.json, DIR/COCO2017_unlabeled/annotations/image_info_unlabeled2017.json, "
                      "DIR/COCO2017_unlabeled/unlabeled2017/", check=_checker([CIRCO], read_circo)))
register(Suite("fashioniq", "FashionIQ composed image retrieval (R@10/50 per category)", load_fashioniq,
               layout="DIR/captions/cap.<category>.val.json, DIR/image_splits/split.<category>.val.json, "
                      "DIR/images/", summarize=summarize_fashioniq,
               overall=lambda results: summarize_fashioniq(results)["average of R@10 and R@50"],
               check=_checker(list(FASHIONIQ.values()), read_fashioniq,
                              lambda o: _with_prefix(o.datasets, "FashionIQ-"))))
register(Suite("text-video", "text-video retrieval both directions (R@1/5/10, median rank)",
               load_paired(TEXT_VIDEO, read_text_video, "text-video"),
               layout="DIR/MSR-VTT/MSRVTT_JSFUSION_test.csv + videos/all/, DIR/MSVD/{test_list.txt,raw-captions.pkl} + "
                      "YouTubeClips/, DIR/DiDeMo/{test_list.txt,test_data.json} + DiDeMo_Videos/",
               check=_checker(list(TEXT_VIDEO.values()), read_text_video, lambda o: _base_names(o.datasets))))
register(Suite("long-captions", "long-caption image-text retrieval both directions (R@1)",
               load_paired(LONG_CAPTIONS, read_long_captions, "long-captions"),
               layout="DIR/ShareGPT4V-1K/datas_for_validation.json + val_data/, "
                      "DIR/Urban1K/caption/<i>.txt + image/<i>.jpg",
               check=_checker(list(LONG_CAPTIONS.values()), read_long_captions, lambda o: _base_names(o.datasets))))
register(Suite("sugarcrepe", "SugarCrepe compositionality (accuracy)",
               load_paired(SUGARCREPE, read_sugarcrepe, "sugarcrepe"),
               layout="DIR/data/<subset>.json and DIR/images/val2017/<filename>", summarize=group_means,
               check=_checker(list(SUGARCREPE.values()), read_sugarcrepe, lambda o: o.datasets)))
