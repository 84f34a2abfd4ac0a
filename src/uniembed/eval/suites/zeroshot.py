"""Zero-shot suites users report: CIRCO, FashionIQ, text-video, long captions, SugarCrepe.

Expected local layouts (`--data DIR` points at the folder described):

circo: the official CIRCO release.
    DIR/annotations/val.json     list of {"id", "reference_img_id", "relative_caption", "gt_img_ids": [...]}
    DIR/COCO2017_unlabeled/unlabeled2017/<12-digit id>.jpg   (or DIR/images/<12-digit id>.jpg)
    The pool is every image in that folder; metric mAP@5 (also @10, @25, @50), global ranking.
    (The reference image stays in the pool.)
fashioniq: the official FashionIQ release.
    DIR/captions/cap.<dress|shirt|toptee>.val.json   list of {"candidate", "target", "captions": [a, b]}
    DIR/image_splits/split.<category>.val.json        list of image ids (the pool of that category)
    DIR/images/<id>.png (or .jpg)
    Query = reference image + "a and b"; R@10 (main) and R@50 per category; summary averages categories.
text-video: one folder per data set (e.g. MSR-VTT, MSVD, DiDeMo).
    DIR/<name>/test.jsonl   rows {"video": path (file or frame folder, relative to DIR/<name>),
                                  "captions": [str, ...]} (or "caption": str)
    Two tasks per data set: "<name> t2v" (each caption ranks all videos) and "<name> v2t" (each video ranks
    all captions, any of its captions counts). R@1/5/10 (hit-style) and median rank.
long-captions: one folder per data set (e.g. ShareGPT4V-1K, Urban1K).
    DIR/<name>/test.jsonl   rows {"image": path relative to DIR/<name>, "caption": str}
    Tasks "<name> t2i" and "<name> i2t", R@1.
sugarcrepe: the official SugarCrepe release plus COCO val2017 images.
    DIR/<subset>.json   {id: {"filename", "caption", "negative_caption"}} for add_att, add_obj, replace_att,
                        replace_obj, replace_rel, swap_att, swap_obj (those present are used)
    DIR/images/<filename>  (or DIR/val2017/<filename>)
    Accuracy = share of images with sim(image, caption) > sim(image, negative_caption), strictly: each query
    ranks [negative, true] and hit@1 needs the true caption (index 1) to win; a tie counts as wrong.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from ...data.examples import EvalTask
from ...errors import InputError
from ...jsonl import iter_json_lines
from ...inputs import Item
from ..aggregate import group_means, mean
from ..runner import TaskResult
from .base import Suite, SuiteOptions, register, select

INSTRUCTIONS = {
    "composed": "Retrieve an image that matches the reference image modified by the text",
    "t2v": "Find a video that matches the caption",
    "v2t": "Find a caption that describes the video",
    "t2i": "Find an image that matches the caption",
    "i2t": "Find a caption that describes the image",
}
FASHIONIQ_CATEGORIES = ("dress", "shirt", "toptee")
SUGARCREPE_SUBSETS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")


def read_json(path: Path):
    if not path.exists():
        raise InputError("file not found", path=path, fix="check the suite's expected layout (uniembed eval --help)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg} at line {exc.lineno})", path=path) from exc


def read_jsonl(path: Path, required: Sequence[str]) -> list[dict]:
    if not path.exists():
        raise InputError("file not found", path=path, fix="check the suite's expected layout (uniembed eval --help)")
    rows = []
    for number, row in iter_json_lines(path):
        missing = [key for key in required if key not in row]
        if missing:
            raise InputError(f"missing field(s) {missing}", path=path, row=number)
        rows.append(row)
    return rows


def existing(path: Path, where: Path, row: int | None = None) -> Path:
    if not path.exists():
        raise InputError(f"media file {path.name} not found", path=where, row=row, fix=f"expected at {path}")
    return path


# ---- CIRCO -------------------------------------------------------------------------------------------

def _circo_image_dir(data: Path) -> Path:
    for candidate in (data / "COCO2017_unlabeled" / "unlabeled2017", data / "images"):
        if candidate.is_dir():
            return candidate
    raise InputError("no CIRCO image folder", path=data, fix="expected COCO2017_unlabeled/unlabeled2017/ or images/")


def load_circo(data: Path, options: SuiteOptions) -> list[EvalTask]:
    select(["CIRCO"], options.datasets, "circo")
    annotations_path = data / "annotations" / "val.json"
    annotations = read_json(annotations_path)
    image_dir = _circo_image_dir(data)
    files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    position = {int(p.stem): i for i, p in enumerate(files)}
    queries, qrels, ids = [], [], []
    for row_number, row in enumerate(annotations, 1):
        try:
            reference = int(row["reference_img_id"])
            targets = [int(t) for t in row["gt_img_ids"]]
            caption = str(row["relative_caption"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"bad annotation ({exc})", path=annotations_path, row=row_number) from exc
        missing = [t for t in [reference, *targets] if t not in position]
        if missing:
            raise InputError(f"image id(s) {missing} not in {image_dir}", path=annotations_path, row=row_number)
        queries.append(Item(text=caption, image=str(files[position[reference]]), instruction=INSTRUCTIONS["composed"]))
        qrels.append({position[t]: 1.0 for t in targets})
        ids.append(str(row.get("id", row_number - 1)))
    candidates = [Item(image=str(p)) for p in files]
    return [EvalTask("CIRCO", queries, candidates, qrels, metric="map@5", meta_task="composed retrieval",
                     modality_group="image", query_ids=ids, candidate_ids=[p.stem for p in files],
                     extra_metrics=("map@10", "map@25", "map@50"))]


# ---- FashionIQ ---------------------------------------------------------------------------------------

def _fashion_image(data: Path, image_id: str, where: Path, row: int | None) -> Path:
    for suffix in (".png", ".jpg", ".jpeg"):
        path = data / "images" / f"{image_id}{suffix}"
        if path.exists():
            return path
    raise InputError(f"image {image_id} not found under {data / 'images'}", path=where, row=row)


def load_fashioniq(data: Path, options: SuiteOptions) -> list[EvalTask]:
    tasks = []
    for category in select(FASHIONIQ_CATEGORIES, _strip(options.datasets, "FashionIQ-"), "fashioniq"):
        split_path = data / "image_splits" / f"split.{category}.val.json"
        caption_path = data / "captions" / f"cap.{category}.val.json"
        if not split_path.exists() and options.datasets is None:
            continue
        pool_ids = [str(i) for i in read_json(split_path)]
        position = {image_id: i for i, image_id in enumerate(pool_ids)}
        candidates = [Item(image=str(_fashion_image(data, i, split_path, n))) for n, i in enumerate(pool_ids, 1)]
        queries, qrels = [], []
        for n, row in enumerate(read_json(caption_path), 1):
            try:
                reference, target, captions = str(row["candidate"]), str(row["target"]), list(row["captions"])
            except (KeyError, TypeError) as exc:
                raise InputError(f"bad caption row ({exc})", path=caption_path, row=n) from exc
            if target not in position:
                raise InputError(f"target {target} is not in {split_path.name}", path=caption_path, row=n)
            text = " and ".join(c.strip().rstrip(".") for c in captions if c and c.strip())
            queries.append(Item(text=text, image=str(_fashion_image(data, reference, caption_path, n)),
                                instruction=INSTRUCTIONS["composed"]))
            qrels.append({position[target]: 1.0})
        tasks.append(EvalTask(f"FashionIQ-{category}", queries, candidates, qrels, metric="hit@10",
                              meta_task="composed retrieval", modality_group="image", candidate_ids=pool_ids,
                              extra_metrics=("hit@50",)))
    return tasks


def summarize_fashioniq(results: Sequence[TaskResult]) -> dict[str, float]:
    r10 = mean([r.metrics["hit@10"] for r in results])
    r50 = mean([r.metrics["hit@50"] for r in results])
    return {"R@10 (mean of categories)": r10, "R@50 (mean of categories)": r50, "average of R@10 and R@50": (r10 + r50) / 2}


# ---- paired suites: text-video and long captions -----------------------------------------------------

def paired_tasks(name: str, media: list[Item], captions: list[list[str]], forward: str, backward: str,
                 group: str, extra: tuple[str, ...]) -> list[EvalTask]:
    """Two global tasks from (medium, its captions) pairs: caption -> medium and medium -> caption."""
    text_queries, text_qrels, caption_owner = [], [], []
    for m, texts in enumerate(captions):
        for text in texts:
            text_queries.append(Item(text=text, instruction=INSTRUCTIONS[forward]))
            text_qrels.append({m: 1.0})
            caption_owner.append(m)
    caption_items = [Item(text=q.text) for q in text_queries]
    by_media: dict[int, dict[int, float]] = defaultdict(dict)
    for c, m in enumerate(caption_owner):
        by_media[m][c] = 1.0
    media_queries = [Item(text=m.text, image=m.image, video=m.video, instruction=INSTRUCTIONS[backward]) for m in media]
    return [EvalTask(f"{name} {forward}", text_queries, list(media), text_qrels, metric="hit@1",
                     meta_task=forward, modality_group=group, extra_metrics=extra),
            EvalTask(f"{name} {backward}", media_queries, caption_items, [by_media[m] for m in range(len(media))],
                     metric="hit@1", meta_task=backward, modality_group=group, extra_metrics=extra)]


def _dataset_dirs(data: Path, requested: list[str] | None, suite: str) -> list[Path]:
    names = sorted(p.name for p in data.iterdir() if (p / "test.jsonl").exists())
    return [data / name for name in select(names, requested, suite)]


def load_text_video(data: Path, options: SuiteOptions) -> list[EvalTask]:
    tasks = []
    for folder in _dataset_dirs(data, _base_names(options.datasets), "text-video"):
        path = folder / "test.jsonl"
        rows = read_jsonl(path, ["video"])
        media, captions = [], []
        for n, row in enumerate(rows, 1):
            texts = row.get("captions") or ([row["caption"]] if row.get("caption") else [])
            if not texts:
                raise InputError("row has no caption(s)", path=path, row=n, fix='add "captions": [...] or "caption"')
            media.append(Item(video=str(existing(folder / row["video"], path, n))))
            captions.append([str(t) for t in texts])
        tasks += paired_tasks(folder.name, media, captions, "t2v", "v2t", "video",
                              ("hit@5", "hit@10", "median_rank"))
    return tasks


def load_long_captions(data: Path, options: SuiteOptions) -> list[EvalTask]:
    tasks = []
    for folder in _dataset_dirs(data, _base_names(options.datasets), "long-captions"):
        path = folder / "test.jsonl"
        rows = read_jsonl(path, ["image", "caption"])
        media = [Item(image=str(existing(folder / row["image"], path, n))) for n, row in enumerate(rows, 1)]
        tasks += paired_tasks(folder.name, media, [[str(row["caption"])] for row in rows], "t2i", "i2t", "image", ())
    return tasks


# ---- SugarCrepe --------------------------------------------------------------------------------------

def load_sugarcrepe(data: Path, options: SuiteOptions) -> list[EvalTask]:
    image_dir = next((d for d in (data / "images", data / "val2017") if d.is_dir()), data / "images")
    present = [s for s in SUGARCREPE_SUBSETS if (data / f"{s}.json").exists()]
    tasks = []
    for subset in select(present, options.datasets, "sugarcrepe"):
        path = data / f"{subset}.json"
        entries = read_json(path)
        queries, candidates, lists, index_of = [], [], [], {}

        def caption_index(text: str) -> int:
            if text not in index_of:
                index_of[text] = len(candidates)
                candidates.append(Item(text=text))
            return index_of[text]

        for n, (key, row) in enumerate(entries.items(), 1):
            try:
                filename, true, false = row["filename"], str(row["caption"]), str(row["negative_caption"])
            except (KeyError, TypeError) as exc:
                raise InputError(f"entry {key!r} lacks {exc}", path=path, row=n) from exc
            queries.append(Item(image=str(existing(image_dir / filename, path, n))))
            lists.append([caption_index(false), caption_index(true)])
        tasks.append(EvalTask(subset, queries, candidates, [{1: 1.0}] * len(queries), metric="hit@1",
                              candidate_lists=lists, meta_task=subset.split("_")[0], modality_group="image", chance=0.5))
    return tasks


def _strip(names: list[str] | None, prefix: str) -> list[str] | None:
    return None if names is None else [n[len(prefix):] if n.startswith(prefix) else n for n in names]


def _base_names(names: list[str] | None) -> list[str] | None:
    """Accept "MSR-VTT" or "MSR-VTT t2v" in --datasets."""
    return None if names is None else sorted({n.rsplit(" ", 1)[0] if " " in n else n for n in names})


register(Suite("circo", "CIRCO composed image retrieval (mAP@5/10/25/50)", load_circo, layout=__doc__.split("circo:")[1].split("fashioniq:")[0].strip()))
register(Suite("fashioniq", "FashionIQ composed image retrieval (R@10/50 per category)", load_fashioniq,
               layout="DIR/captions/cap.<category>.val.json, DIR/image_splits/split.<category>.val.json, DIR/images/",
               summarize=summarize_fashioniq,
               overall=lambda results: summarize_fashioniq(results)["average of R@10 and R@50"]))
register(Suite("text-video", "text-video retrieval both directions (R@1/5/10, median rank)", load_text_video,
               layout="DIR/<name>/test.jsonl with rows {video, captions}"))
register(Suite("long-captions", "long-caption image-text retrieval both directions (R@1)", load_long_captions,
               layout="DIR/<name>/test.jsonl with rows {image, caption}"))
register(Suite("sugarcrepe", "SugarCrepe compositionality (accuracy)", load_sugarcrepe,
               layout="DIR/<subset>.json and DIR/images/<filename>", summarize=group_means))
