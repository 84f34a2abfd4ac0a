"""`generate(out_dir, size, seed)`: build every task, render all media in a process pool, write the layouts.

Order matters for determinism and disjointness: test examples are built first (their world keys collected),
then training examples, which skip anything whose keys the test split uses. Each task draws from its own
random stream seeded by (seed, split, task), so adding a task does not change the others.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from ...errors import InputError
from .examples import Media, SynthExample, TaskDef
from .mbeir import MBEIR_NAME, mbeir_files
from .render import run_job
from .tasks_docs import DOC_QUERY, build_families
from .tasks_image import IMAGE_TASKS, IMAGE_TARGET
from .tasks_text import TEXT_INSTRUCTION, TEXT_TASKS
from .tasks_video import POOL_BUILDERS, VIDEO_TASKS
from .video_layouts import MEDIA_FOLDER, SCHEMAS as VIDEO_SCHEMAS, link_moment_folders, video_rows
from .writers import (
    MMEB_EVAL_FILE, MMEB_EVAL_SCHEMA, MMEB_TRAIN_FILE, MMEB_TRAIN_SCHEMA, VIDEO_TRAIN_SCHEMA,
    chance_global_hit1, chance_local_hit1, chance_ndcg, write_beir, write_jsonl, write_parquet,
)

FORMAT_VERSION = 2  # 2: video test tasks in the MMEB-V2 data sets' own layouts
DOC_TASK = "SynDocs"
MBEIR_TASK = "SynMBEIR_T2I"
TRAIN_VIDEO_FRAMES = 8


@dataclass(frozen=True)
class SizeConfig:
    test_queries: int  # per task
    train_rows: int  # per training subset (text: twice this)


SIZES = {
    "tiny": SizeConfig(test_queries=16, train_rows=16),
    "small": SizeConfig(test_queries=150, train_rows=600),
    "full": SizeConfig(test_queries=1000, train_rows=2000),
}
ALL_TASKS: tuple[TaskDef, ...] = IMAGE_TASKS + VIDEO_TASKS + TEXT_TASKS


def task_rng(seed: int, split: str, name: str) -> random.Random:
    return random.Random(f"uniembed-synth:{seed}:{split}:{name}")


def build_examples(task: TaskDef, rng: random.Random, count: int, split: str, forbidden: set) -> list[SynthExample]:
    if task.name in POOL_BUILDERS:
        return POOL_BUILDERS[task.name](rng, count, forbidden, split)
    examples: list[SynthExample] = []
    for _ in range(100 * count + 100):
        if len(examples) >= count:
            return examples
        example = task.build(rng)
        if example is not None and not (example.keys & forbidden):
            examples.append(example)
    raise RuntimeError(f"synthetic task {task.name}: could not build {count} examples")


TASKS_BY_NAME = {task.name: task for task in ALL_TASKS}


def _build_job(args: tuple) -> list[SynthExample]:
    """Pool entry: build one task's examples from its own random stream (same result in any process)."""
    name, seed, split, count, forbidden = args
    return build_examples(TASKS_BY_NAME[name], task_rng(seed, split, name), count, split, forbidden)


def build_all(requests: list[tuple], pool) -> list[list[SynthExample]]:
    """Build several tasks at once, in the pool when there is one; results come back in request order."""
    return pool.map(_build_job, requests, chunksize=1) if pool is not None else [_build_job(r) for r in requests]


@dataclass
class MediaWriter:
    """Names media files under a root, queues their render jobs (shared names render once)."""

    root: Path
    task: str
    jobs: dict = field(default_factory=dict)

    def path(self, media: Media | None, default_name: str) -> str:
        if media is None:
            return ""
        name = media.name or default_name
        if media.is_video:
            rel = f"{self.task}/{name}"
            self.jobs.setdefault(str(self.root / rel), ("video", str(self.root / rel), media.video, *media.frames))
        else:
            rel = f"{self.task}/{name}.png"
            self.jobs.setdefault(str(self.root / rel), ("picture", str(self.root / rel), media.picture))
        return rel


def eval_rows(examples: list[SynthExample], media: MediaWriter, video: bool) -> list[dict]:
    rows = []
    for i, ex in enumerate(examples):
        query_path = media.path(ex.query_media, f"{i:05d}_q")
        targets = [media.path(m, f"{i:05d}_c{k:02d}") for k, (_, m) in enumerate(ex.candidates)]
        is_video = [m is not None and m.is_video for _, m in ex.candidates]
        row = {"qry_text": ex.query_text, "tgt_text": [t for t, _ in ex.candidates]}
        q_video = ex.query_media is not None and ex.query_media.is_video
        row["qry_img_path"] = "" if q_video else query_path
        row["tgt_img_path"] = ["" if v else p for p, v in zip(targets, is_video)]
        if video:
            row["qry_video_path"] = query_path if q_video else ""
            row["tgt_video_path"] = [p if v else "" for p, v in zip(targets, is_video)]
        rows.append(row)
    return rows


def shorter_video(media: Media | None) -> Media | None:
    """Training copies of one-segment videos keep TRAIN_VIDEO_FRAMES frames (same motion, coarser steps):
    MMEB-V2 samples 8 frames anyway, and it halves the files to draw."""
    if media is None or not media.is_video or media.video.segments != 1:
        return media
    video = replace(media.video, frames_per_segment=TRAIN_VIDEO_FRAMES)
    return replace(media, video=video, frames=(0, TRAIN_VIDEO_FRAMES))


def train_rows(examples: list[SynthExample], media: MediaWriter, video: bool) -> list[dict]:
    """Query, gold positive and the first hard negative of each example (MMEB-train columns)."""
    rows = []
    for i, ex in enumerate(examples):
        (pos_text, pos), (neg_text, neg) = ex.candidates[0], ex.candidates[1]
        parts = {"qry": (ex.query_text, shorter_video(ex.query_media), f"{i:05d}_q"),
                 "pos": (pos_text, shorter_video(pos), f"{i:05d}_pos"),
                 "neg": (neg_text, shorter_video(neg), f"{i:05d}_neg")}
        row = {}
        for prefix, (text, item, name) in parts.items():
            path = media.path(item, name)
            is_video = item is not None and item.is_video
            row["qry" if prefix == "qry" else f"{prefix}_text"] = text
            row[f"{prefix}_image_path"] = "" if is_video else path
            if video:
                row[f"{prefix}_video_path"] = path if is_video else ""
        rows.append(row)
    return rows


def task_record(task: TaskDef, layout: str, path: str, rows: list[dict], root: str) -> dict:
    lengths = [len(r["tgt_text"]) for r in rows]
    if task.ranking == "global":
        pool = {(r.get("tgt_video_path") or r["tgt_img_path"])[0] for r in rows}
        chance, n_candidates = chance_global_hit1(len(pool), [1] * len(rows)), len(pool)
    else:
        chance = chance_local_hit1(lengths)
        n_candidates = len({(t, i, v) for r in rows for t, i, v in
                            zip(r["tgt_text"], r["tgt_img_path"], r.get("tgt_video_path", [""] * len(r["tgt_text"])))})
    return {
        "name": task.name, "layout": layout, "path": path, "media_root": root, "meta_task": task.meta_task,
        "modality_group": task.group, "ranking": task.ranking, "metric": "hit@1",
        "num_queries": len(rows), "num_candidates": n_candidates,
        "candidates_per_query": (sum(lengths) / len(lengths)) if task.ranking == "local" else n_candidates,
        "chance_percent": round(chance, 4), "in_distribution": task.in_distribution, "mirrors": task.mirrors,
    }


def prepare_output(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError("output folder is not empty", path=out, fix="pass an empty folder or --overwrite")
        if not (out / "metadata.json").exists():
            raise InputError("refusing to overwrite a folder that holds no synthetic benchmark", path=out,
                             fix="choose an empty folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def render_all(jobs: Iterable[tuple], pool, progress: bool) -> dict[str, bytes]:
    """Run render jobs (files written by the workers); returns the bytes of jobs that produce them (pages)."""
    jobs = sorted(jobs, key=lambda j: j[1])
    results: dict[str, bytes] = {}
    outputs = map(run_job, jobs) if pool is None else pool.imap_unordered(run_job, jobs, chunksize=32)
    with tqdm(total=len(jobs), desc="uniembed synth: drawing", unit="file", disable=not progress) as bar:
        for target, data in outputs:
            if data is not None:
                results[target] = data
            bar.update(1)
    return results


def tree_stats(out: Path) -> tuple[int, int]:
    files = [p for p in out.rglob("*") if p.is_file() and p.name != "metadata.json"]
    return len(files), sum(p.stat().st_size for p in files)


def generate(out_dir: str | os.PathLike, size: str | SizeConfig = "small", seed: int = 0, workers: int | None = None,
             overwrite: bool = False, progress: bool = True) -> dict:
    """Write the whole synthetic benchmark under `out_dir` and return its metadata (also in metadata.json).

    `size` is "tiny", "small", "full" or a `SizeConfig` (queries per test task, rows per training subset)."""
    if isinstance(size, SizeConfig):
        config, size = size, f"custom({size.test_queries},{size.train_rows})"
    elif size in SIZES:
        config = SIZES[size]
    else:
        raise InputError(f"unknown size {size!r}", fix=f"use one of {', '.join(SIZES)}")
    start = time.perf_counter()
    out = Path(out_dir)
    prepare_output(out, overwrite)
    workers = workers or min(os.cpu_count() or 1, 8)
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        metadata = _generate(out, size, seed, config, pool, progress, start)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    metadata["workers"] = workers
    with open(out / "metadata.json", "w", encoding="utf-8") as handle:
        json.dump(metadata, handle, indent=2)
        handle.write("\n")
    return metadata


def _generate(out: Path, size: str, seed: int, config: SizeConfig, pool, progress: bool, start: float) -> dict:
    jobs: dict = {}
    pending: list = []  # (path, rows, schema) written after rendering
    links: list = []  # moment-retrieval clip folders, linked after rendering
    tasks, train = [], []
    test_keys: set = set()

    # ---- test split
    built = build_all([(t.name, seed, "test", config.test_queries, frozenset()) for t in ALL_TASKS], pool)
    for task, examples in zip(ALL_TASKS, built):
        for ex in examples:
            test_keys |= ex.keys
        top = {"image": "mmeb", "video": "video", "text": "text"}[task.group]
        root = {"image": "mmeb/images", "video": "video/frames", "text": ""}[task.group]
        if task.group == "video":  # the MMEB-V2 data set's own layout (video_layouts.py)
            media = MediaWriter(out / root, MEDIA_FOLDER[task.name], jobs)
            rows = eval_rows(examples, media, video=True)  # names the media; the record's counts
            paths = [(r["qry_video_path"] or r["qry_img_path"],
                      [v or i for v, i in zip(r["tgt_video_path"], r["tgt_img_path"])]) for r in rows]
            real_rows, fields = video_rows(task.name, examples, paths)
            path = f"{top}/{task.name}/{MMEB_EVAL_FILE}"
            pending.append((out / path, real_rows, VIDEO_SCHEMAS[fields["parser"]]))
            if fields["parser"] == "moment_retrieval":
                links.append((out / fields["frames"], paths))
            record = task_record(task, "mmeb_v2_video", f"{top}/{task.name}", rows, root)
            tasks.append({**record, **fields})
            continue
        media = MediaWriter(out / root, task.name, jobs)
        rows = eval_rows(examples, media, video=False)
        path = f"{top}/{task.name}/{MMEB_EVAL_FILE}"
        pending.append((out / path, rows, MMEB_EVAL_SCHEMA))
        tasks.append(task_record(task, "mmeb_v1", path, rows, root))

    # ---- M-BEIR slice: captions -> images over a local pool (its own random stream, test keys kept)
    mbeir_examples = build_examples(TASKS_BY_NAME["SynT2I"], task_rng(seed, "test", MBEIR_TASK),
                                    config.test_queries, "test", frozenset())
    for ex in mbeir_examples:
        test_keys |= ex.keys
    n_queries, n_pool = mbeir_files(out / "mbeir", mbeir_examples,
                                    MediaWriter(out / "mbeir", f"mbeir_images/{MBEIR_TASK}", jobs))
    mbeir_entry = {"name": MBEIR_TASK, "layout": "mbeir", "path": "mbeir", "mbeir_task": MBEIR_NAME,
                   "media_root": "mbeir",
                   "meta_task": "retrieval", "modality_group": "image", "ranking": "global", "metric": "hit@5",
                   "num_queries": n_queries, "num_candidates": n_pool, "candidates_per_query": n_pool,
                   "chance_percent": round(100.0 * min(5, n_pool) / n_pool, 4), "in_distribution": True,
                   "mirrors": "M-BEIR MSCOCO task 0 (text -> image, local pool, recall@5)"}

    families = build_families(task_rng(seed, "test", DOC_TASK), config.test_queries, set())
    doc_titles = set().union(*(f.titles for f in families))

    # ---- training split (disjoint from test by world keys / titles)
    train_tasks = [t for t in ALL_TASKS if t.in_distribution]
    counts = [config.train_rows * (2 if t.group == "text" else 1) for t in train_tasks]
    built = build_all([(t.name, seed, "train", n, frozenset(test_keys)) for t, n in zip(train_tasks, counts)], pool)
    for task, examples in zip(train_tasks, built):
        if task.group == "text":
            rows = [{"query": ex.query_text.split(": ", 1)[1].rstrip("\n"), "positive": ex.candidates[0][0],
                     "negative": ex.candidates[1][0], "instruction": TEXT_INSTRUCTION} for ex in examples]
            path = f"text_train/{task.name}.jsonl"
            write_jsonl(out / path, rows)
            train.append({"name": task.name, "layout": "jsonl_triplets", "path": path, "media_root": "",
                          "modality_group": "text", "num_rows": len(rows)})
            continue
        video = task.group == "video"
        root = "video_train/frames" if video else "mmeb_train/images"
        media = MediaWriter(out / root, task.name, jobs)
        rows = train_rows(examples, media, video)
        path = f"{'video_train' if video else 'mmeb_train'}/{task.name}/{MMEB_TRAIN_FILE}"
        pending.append((out / path, rows, VIDEO_TRAIN_SCHEMA if video else MMEB_TRAIN_SCHEMA))
        train.append({"name": task.name, "layout": "mmeb_train_video" if video else "mmeb_train", "path": path,
                      "media_root": root, "modality_group": task.group, "num_rows": len(rows)})

    train_families = build_families(task_rng(seed, "train", DOC_TASK), config.train_rows, doc_titles)
    doc_train_rows = []
    for f_index, family in enumerate(train_families):
        for q_index, (query, page) in enumerate(family.queries):
            names = {}
            for role, page_index in (("pos", page), ("neg", (page + 1) % (len(family.pages) - 1))):
                rel = f"{DOC_TASK}/{f_index:05d}_p{page_index}.png"
                jobs.setdefault(str(out / "mmeb_train/images" / rel), ("page_file", str(out / "mmeb_train/images" / rel),
                                                                          family.pages[page_index]))
                names[role] = rel
            doc_train_rows.append({"qry": DOC_QUERY.format(query), "qry_image_path": "", "pos_text": IMAGE_TARGET,
                                   "pos_image_path": names["pos"], "neg_text": IMAGE_TARGET, "neg_image_path": names["neg"]})
    doc_train_rows = doc_train_rows[: config.train_rows]
    path = f"mmeb_train/{DOC_TASK}/{MMEB_TRAIN_FILE}"
    pending.append((out / path, doc_train_rows, MMEB_TRAIN_SCHEMA))
    train.append({"name": DOC_TASK, "layout": "mmeb_train", "path": path, "media_root": "mmeb_train/images",
                  "modality_group": "visdoc", "num_rows": len(doc_train_rows)})

    # ---- visual documents, test (pages go into the corpus parquet as bytes)
    queries, corpus_pages, qrels = [], [], []
    for family in families:
        first = len(corpus_pages)
        corpus_pages.extend(family.pages)
        summary = first + len(family.pages) - 1
        for text, page in family.queries:
            qid = len(queries)
            queries.append((qid, text))
            qrels += [(qid, first + page, 2), (qid, summary, 1)]
    for cid, page in enumerate(corpus_pages):
        jobs[f"page:{cid:06d}"] = ("page", f"page:{cid:06d}", page)

    rendered = render_all(jobs.values(), pool, progress)
    for path, rows, schema in pending:
        write_parquet(path, rows, schema)
    for frames, paths in links:
        link_moment_folders(frames, paths)
    doc_dir = f"visdoc/{DOC_TASK}"
    write_beir(out / doc_dir, queries, [(cid, rendered[f"page:{cid:06d}"], f"{cid:06d}.png")
                                        for cid in range(len(corpus_pages))], qrels)
    per_query = [[2.0, 1.0] for _ in queries]
    tasks.append({"name": DOC_TASK, "layout": "beir", "path": doc_dir, "media_root": "", "meta_task": "retrieval",
                  "modality_group": "visdoc", "ranking": "global", "metric": "ndcg@5", "num_queries": len(queries),
                  "num_candidates": len(corpus_pages), "candidates_per_query": len(corpus_pages),
                  "chance_percent": round(chance_ndcg(per_query, len(corpus_pages), 5), 4), "in_distribution": True,
                  "mirrors": "ViDoRe (BEIR layout, graded qrels)"})

    tasks.append(mbeir_entry)
    files, disk = tree_stats(out)
    return {
        "name": "uniembed-synth", "format_version": FORMAT_VERSION, "size": size, "seed": seed,
        "tasks": tasks, "train": train,
        "num_test_queries": sum(t["num_queries"] for t in tasks), "num_train_rows": sum(t["num_rows"] for t in train),
        "num_files": files, "disk_bytes": disk, "generation_seconds": round(time.perf_counter() - start, 2),
    }
