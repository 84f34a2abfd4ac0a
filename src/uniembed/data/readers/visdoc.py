"""Visual-document retrieval tasks (ViDoRe, VisRAG, ViDoSeek, MMLongBench in MMEB-V2) in the BEIR layout.

A task is a local copy of its hub repository (e.g. `vidore/docvqa_test_subsampled_beir`): three
configs, each a folder of parquet shards of the split (`queries/test-00000-of-00001.parquet`; VisRAG's
split is `train`), or a single file (`queries.parquet`, `queries.jsonl`):
    queries  `query-id`, `query` (+ `language` in ViDoRe-v2)
    corpus   `corpus-id`, `image` (an HF image struct with bytes, or a path relative to `media_root`)
    qrels    `query-id`, `corpus-id`, `score`  (parquet, JSONL, or TSV with that header)
As TIGER-AI-Lab/VLM2Vec@6e1e1d4 reads them (src/data/eval_dataset/vidore_dataset.py:79-111,
visrag_dataset.py:88-111, src/utils/dataset_utils.py:20-43): pairs with score <= 0 are dropped and a
repeated pair keeps its higher score; `language` filters the queries (the ViDoRe-v2 English tasks,
vidore_dataset.py:85-86); each query ranks the whole corpus; the headline metric is nDCG@5 with linear
gain (experiments/report_score_v2.py:85, `ndcg_linear@5`). Queries left without a relevant page are
left out (the reference would stop with a KeyError). `reference_pairing=True` pairs grades with pages as
the published scores do (`pool.reference_graded_pairs`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask
from .common import ReadReport, RowGuard, iter_fields, logger, read_rows, resolve_media, table_files, text_or_none
from .hub import data_files
from .pool import CandidatePool, ndcg_chance, reference_graded_pairs


def read_visdoc(
    path: str | os.PathLike,
    media_root: str | os.PathLike | None = None,
    *,
    name: str | None = None,
    query_instruction: str | None = None,
    target_instruction: str | None = None,
    split: str | None = None,
    language: str | None = None,
    reference_pairing: bool = False,
    meta_task: str = "visual_document",
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> EvalTask:
    """One visual-document task from its BEIR-layout folder; `query_instruction` goes on every query,
    `target_instruction` on every page; `split` picks the shards, `language` filters the queries."""
    folder = Path(path)
    root = media_root if media_root is not None else folder
    name = name or folder.name
    if report is None:
        report = ReadReport()
    pool, pool_index = _read_corpus(_config(folder, "corpus", split), root, skip_bad_rows, report,
                                    target_instruction)
    query_ids, query_texts = _read_queries(_config(folder, "queries", split), skip_bad_rows, report, language)
    relevance = _read_qrels(_config(folder, "qrels", split), set(query_ids), pool_index, skip_bad_rows, report,
                            reference_pairing)
    kept = [i for i, qid in enumerate(query_ids) if relevance.get(qid)]
    if len(kept) < len(query_ids):
        logger.info("%s: %d of %d queries have no relevant page and are left out", name,
                    len(query_ids) - len(kept), len(query_ids))
    if not kept:
        raise InputError(f"task '{name}' has no query with a relevant page (score > 0)", path=folder)
    return EvalTask(
        name=name,
        queries=[Item(text=query_texts[i], instruction=query_instruction) for i in kept],
        candidates=pool.items,
        qrels=[relevance[query_ids[i]] for i in kept],
        metric="ndcg@5",
        chance=ndcg_chance(len(pool), [list(relevance[query_ids[i]].values()) for i in kept], 5),
        meta_task=meta_task,
        modality_group="visdoc",
        query_ids=[query_ids[i] for i in kept],
        candidate_ids=pool.ids,
    )


def _config(folder: Path, config: str, split: str | None) -> list[Path]:
    """The files of one config (`queries`, `corpus`, `qrels`): the split's shards in its folder, or a file."""
    if (folder / config).is_dir():
        return data_files(folder, config, split)
    return table_files(folder / config)


def _read_corpus(files: list[Path], root: Any, skip: bool, report: ReadReport,
                 instruction: str | None) -> tuple[CandidatePool, dict[str, int]]:
    pool = CandidatePool()
    index: dict[str, int] = {}
    for file in files:
        guard = RowGuard(file, skip, report)
        for row_number, row in read_rows(file, ("corpus-id", "image"), guard):
            def build() -> tuple[str, int]:
                corpus_id = text_or_none(row["corpus-id"])
                if corpus_id is None:
                    raise InputError("empty corpus-id")
                image = resolve_media(row["image"], root, "page image")
                if image is None:
                    raise InputError(f"page '{corpus_id}' has no image")
                return corpus_id, pool.add(Item(image=image, instruction=instruction), corpus_id)
            entry = guard.build(row_number, build)
            if entry is not None:
                index[entry[0]] = entry[1]
        guard.finish()
    if not pool.items:
        raise InputError("corpus is empty", path=files[0].parent if files else None)
    return pool, index


def _read_queries(files: list[Path], skip: bool, report: ReadReport,
                  language: str | None) -> tuple[list[str], list[str]]:
    ids: list[str] = []
    texts: list[str] = []
    for file in files:
        guard = RowGuard(file, skip, report)
        for row_number, row in read_rows(file, ("query-id", "query") + (("language",) if language else ()), guard):
            if language and row.get("language") != language:
                continue

            def build() -> tuple[str, str]:
                query_id, text = text_or_none(row["query-id"]), text_or_none(row["query"])
                if query_id is None or text is None:
                    raise InputError("empty query-id or query")
                return query_id, text
            entry = guard.build(row_number, build)
            if entry is not None:
                ids.append(entry[0])
                texts.append(entry[1])
        guard.finish()
    return ids, texts


def _read_qrels(files: list[Path], query_ids: set[str], pool_index: dict[str, int], skip: bool,
                report: ReadReport, reference_pairing: bool) -> dict[str, dict[int, float]]:
    graded: dict[str, dict[Any, float]] = {}  # query -> {corpus-id as stored: grade}, in file order
    for file in files:
        guard = RowGuard(file, skip, report)
        for row_number, (query_id, corpus_id, score) in _qrel_rows(file, guard):
            def build() -> None:
                if str(corpus_id) not in pool_index:
                    raise InputError(f"corpus-id '{corpus_id}' is not in the corpus")
                try:
                    value = float(score)
                except (TypeError, ValueError):
                    raise InputError(f"score {score!r} is not a number") from None
                if value > 0 and query_id in query_ids:
                    target = graded.setdefault(query_id, {})
                    target[corpus_id] = max(value, target.get(corpus_id, 0.0))
            guard.build(row_number, build)
        guard.finish()
    relevance: dict[str, dict[int, float]] = {}
    for query_id, grades in graded.items():
        pairs = reference_graded_pairs(grades, grades.values()) if reference_pairing else grades
        relevance[query_id] = {pool_index[str(c)]: g for c, g in pairs.items()}
    return relevance


def _qrel_rows(file: Path, guard: RowGuard):
    if file.suffix == ".tsv":
        for number, fields in iter_fields(file, "\t"):
            if number == 1 and fields[:2] == ["query-id", "corpus-id"]:
                continue
            if len(fields) != 3:
                guard.report.rows_read += 1
                guard.bad(InputError(f"expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}"),
                          number)
                continue
            yield number, tuple(fields)
        return
    for number, row in read_rows(file, ("query-id", "corpus-id", "score"), guard):
        yield number, (str(row["query-id"]), row["corpus-id"], row["score"])
