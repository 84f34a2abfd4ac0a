"""Visual-document retrieval tasks (ViDoRe, VisRAG, ... in MMEB-V2) in the BEIR layout.

A task folder holds three tables, each a file (`queries.parquet`, `queries.jsonl`) or a folder of
parquet shards (`queries/test-00000-of-00001.parquet`):
    queries  `query-id`, `query`
    corpus   `corpus-id`, `image` (an HF image struct with bytes, or a path relative to `media_root`)
    qrels    `query-id`, `corpus-id`, `score`  (parquet, JSONL, or TSV with that header)
Relevance is graded; pairs with score <= 0 are dropped, and so are queries left without a relevant page.
Each query ranks the whole de-duplicated corpus; the headline metric is nDCG@5.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask
from .common import ReadReport, RowGuard, iter_fields, logger, read_rows, resolve_media, table_files, text_or_none
from .pool import CandidatePool, ndcg_chance


def read_visdoc(
    path: str | os.PathLike,
    media_root: str | os.PathLike | None = None,
    *,
    name: str | None = None,
    query_instruction: str | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> EvalTask:
    """One visual-document task from its BEIR-layout folder; `query_instruction` goes on every query."""
    folder = Path(path)
    root = media_root if media_root is not None else folder
    name = name or folder.name
    if report is None:
        report = ReadReport()
    pool, pool_index = _read_corpus(folder / "corpus", root, skip_bad_rows, report)
    query_ids, query_texts = _read_queries(folder / "queries", skip_bad_rows, report)
    relevance = _read_qrels(folder / "qrels", set(query_ids), pool_index, skip_bad_rows, report)
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
        meta_task="visual_document",
        modality_group="visdoc",
        query_ids=[query_ids[i] for i in kept],
        candidate_ids=pool.ids,
    )


def _read_corpus(path: Path, root: Any, skip: bool, report: ReadReport) -> tuple[CandidatePool, dict[str, int]]:
    pool = CandidatePool()
    index: dict[str, int] = {}
    for file in table_files(path):
        guard = RowGuard(file, skip, report)
        for row_number, row in read_rows(file, ("corpus-id", "image"), guard):
            def build() -> tuple[str, int]:
                corpus_id = text_or_none(row["corpus-id"])
                if corpus_id is None:
                    raise InputError("empty corpus-id")
                image = resolve_media(row["image"], root, "page image")
                if image is None:
                    raise InputError(f"page '{corpus_id}' has no image")
                return corpus_id, pool.add(Item(image=image), corpus_id)
            entry = guard.build(row_number, build)
            if entry is not None:
                index[entry[0]] = entry[1]
        guard.finish()
    if not pool.items:
        raise InputError("corpus is empty", path=path)
    return pool, index


def _read_queries(path: Path, skip: bool, report: ReadReport) -> tuple[list[str], list[str]]:
    ids: list[str] = []
    texts: list[str] = []
    for file in table_files(path):
        guard = RowGuard(file, skip, report)
        for row_number, row in read_rows(file, ("query-id", "query"), guard):
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


def _read_qrels(path: Path, query_ids: set[str], pool_index: dict[str, int], skip: bool,
                report: ReadReport) -> dict[str, dict[int, float]]:
    relevance: dict[str, dict[int, float]] = {}
    for file in table_files(path):
        guard = RowGuard(file, skip, report)
        for row_number, (query_id, corpus_id, score) in _qrel_rows(file, guard):
            def build() -> None:
                if corpus_id not in pool_index:
                    raise InputError(f"corpus-id '{corpus_id}' is not in the corpus")
                try:
                    value = float(score)
                except (TypeError, ValueError):
                    raise InputError(f"score {score!r} is not a number") from None
                if value > 0 and query_id in query_ids:
                    target = relevance.setdefault(query_id, {})
                    position = pool_index[corpus_id]
                    target[position] = max(value, target.get(position, 0.0))
            guard.build(row_number, build)
        guard.finish()
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
        yield number, (str(row["query-id"]), str(row["corpus-id"]), row["score"])
