"""The corpus-plus-ids training format: queries hold ids, a corpus holds the items (each stored once).

queries (JSONL or parquet), one row per query:
    query_id               str, unique
    query_text             str (optional)
    query_image            path relative to `media_root`, or an HF image struct (optional)
    query_video            frame folder or video file relative to `media_root` (optional)
    query_instruction      str (optional)
    positive_document_ids  list[str], non-empty (the first is the contrastive target)
    negative_document_ids  list[str] (optional)
corpus (JSONL or parquet), one row per document:
    docid, text, image, video, instruction   (all but docid optional; at least one of text/image/video)

Hard-negative mining rewrites only `negative_document_ids` (see `rewrite_negative_ids`); the corpus is
never copied.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...errors import InputError
from ...inputs import Item
from ...jsonl import iter_json_lines
from ..examples import TrainingExample
from .common import ReadReport, RowGuard, as_text_list, item_from_value, read_rows, require_file, text_or_none

QUERY_COLUMNS = ("query_id", "positive_document_ids")
CORPUS_COLUMNS = ("docid",)


def read_corpus(path: str | os.PathLike, media_root: str | os.PathLike | None = None, *,
                skip_bad_rows: bool = False, report: ReadReport | None = None) -> dict[str, Item]:
    """docid -> Item for a corpus file."""
    file = require_file(path, "corpus")
    root = media_root if media_root is not None else file.parent
    guard = RowGuard(file, skip_bad_rows, report)
    corpus: dict[str, Item] = {}
    for row_number, row in read_rows(file, CORPUS_COLUMNS, guard):
        def build() -> tuple[str, Item]:
            docid = text_or_none(row.get("docid"))
            if docid is None:
                raise InputError("empty docid")
            if docid in corpus:
                raise InputError(f"duplicate docid '{docid}'", fix="give every document a unique docid")
            fields = {k: row.get(k) for k in ("text", "image", "video", "instruction") if row.get(k) is not None}
            return docid, item_from_value(fields, root, f"document '{docid}'")
        entry = guard.build(row_number, build)
        if entry is not None:
            corpus[entry[0]] = entry[1]
    guard.finish()
    return corpus


def read_corpus_ids(
    queries_path: str | os.PathLike,
    corpus_path: str | os.PathLike,
    media_root: str | os.PathLike | None = None,
    *,
    source: str | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    max_rows: int | None = None,
) -> list[TrainingExample]:
    """Training examples from a queries file and a corpus file; ids are kept on each example."""
    file = require_file(queries_path, "queries")
    root = media_root if media_root is not None else file.parent
    corpus = read_corpus(corpus_path, media_root if media_root is not None else Path(corpus_path).parent,
                         skip_bad_rows=skip_bad_rows, report=report)
    name = source or file.stem
    guard = RowGuard(file, skip_bad_rows, report)
    examples: list[TrainingExample] = []
    for row_number, row in read_rows(file, QUERY_COLUMNS, guard):
        if max_rows is not None and len(examples) >= max_rows:
            break
        example = guard.build(row_number, lambda: _example(row, corpus, root, name, str(corpus_path)))
        if example is not None:
            examples.append(example)
    guard.finish()
    return examples


def _example(row: Mapping[str, Any], corpus: Mapping[str, Item], root: Any, source: str, corpus_name: str) -> TrainingExample:
    query_id = text_or_none(row.get("query_id"))
    if query_id is None:
        raise InputError("empty query_id")
    fields = {"text": row.get("query_text"), "image": row.get("query_image"), "video": row.get("query_video"),
              "instruction": row.get("query_instruction")}
    query = item_from_value({k: v for k, v in fields.items() if v is not None}, root, f"query '{query_id}'")
    positive_ids = as_text_list(row.get("positive_document_ids"), "positive_document_ids")
    negative_ids = as_text_list(row.get("negative_document_ids"), "negative_document_ids")
    if not positive_ids:
        raise InputError(f"query '{query_id}' has no positive_document_ids")
    return TrainingExample(
        query=query,
        positives=_lookup(positive_ids, corpus, corpus_name),
        negatives=_lookup(negative_ids, corpus, corpus_name),
        source=source,
        query_id=query_id,
        positive_ids=positive_ids,
        negative_ids=negative_ids,
    )


def _lookup(ids: Sequence[str], corpus: Mapping[str, Item], corpus_name: str) -> list[Item]:
    missing = [docid for docid in ids if docid not in corpus]
    if missing:
        raise InputError(f"document id(s) {missing[:5]} not in the corpus '{corpus_name}'",
                         fix="add them to the corpus or remove them from the query")
    return [corpus[docid] for docid in ids]


def rewrite_negative_ids(queries_path: str | os.PathLike, out_path: str | os.PathLike,
                         negatives: Mapping[str, Sequence[str]]) -> int:
    """Write a copy of a JSONL queries file with `negative_document_ids` replaced for the given query ids.

    Returns the number of rows rewritten. Rows are otherwise copied unchanged, in order.
    """
    file = require_file(queries_path, "queries")
    if file.suffix == ".parquet":
        raise InputError("rewriting is supported for JSONL queries files", path=file,
                         fix="convert the queries to JSONL first")
    rewritten = 0
    out = Path(out_path)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as sink:
        for _, row in iter_json_lines(file):
            query_id = str(row.get("query_id"))
            if query_id in negatives:
                row["negative_document_ids"] = [str(d) for d in negatives[query_id]]
                rewritten += 1
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    return rewritten
