"""uniembed's own training JSONL: one object per line.

    {"query": ITEM, "positive": ITEM, "negatives": [ITEM, ...], "source": "name", "instruction": "..."}

ITEM is a string (text) or an object with any of `text`, `image`, `images`, `video` (a file or a folder
of frames) and `instruction`; media paths are relative to `media_root` (default: the JSONL's folder).
`positives: [ITEM, ...]` may replace `positive` (the first is the contrastive target), `negative: ITEM`
may replace `negatives`; `instruction` is the query's instruction (shorthand for putting it in the query
object). `negatives`, `source` and `instruction` are optional (`source` defaults to the reader's `source`
argument, then the file name).
"""
from __future__ import annotations

import os
from typing import Any

from ...errors import InputError
from ..examples import TrainingExample
from .common import ReadReport, RowGuard, item_from_value, iter_jsonl, require_file, text_or_none


def read_jsonl_examples(
    path: str | os.PathLike,
    media_root: str | os.PathLike | None = None,
    *,
    source: str | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    max_rows: int | None = None,
) -> list[TrainingExample]:
    """Training examples from a uniembed JSONL file."""
    file = require_file(path, "training JSONL")
    root = media_root if media_root is not None else file.parent
    default_source = source or file.stem
    guard = RowGuard(file, skip_bad_rows, report)
    examples: list[TrainingExample] = []
    for line, row in iter_jsonl(file, guard):
        if max_rows is not None and len(examples) >= max_rows:
            break
        example = guard.build(line, lambda: _example(row, root, default_source))
        if example is not None:
            examples.append(example)
    guard.finish()
    return examples


def _example(row: dict[str, Any], root: Any, default_source: str) -> TrainingExample:
    unknown = set(row) - {"query", "positive", "positives", "negative", "negatives", "source", "instruction"}
    if unknown:
        raise InputError(f"unknown field(s) {sorted(unknown)}",
                         fix="use query, positive or positives, negative or negatives, source, instruction")
    if "query" not in row:
        raise InputError("missing field 'query'")
    if "positive" in row and "positives" in row:
        raise InputError("both 'positive' and 'positives' given", fix="use one of them")
    positives = [row["positive"]] if "positive" in row else row.get("positives")
    if not isinstance(positives, list) or not positives:
        raise InputError("missing 'positive' (or a non-empty 'positives' list)")
    if "negative" in row and "negatives" in row:
        raise InputError("both 'negative' and 'negatives' given", fix="use one of them")
    negatives = [row["negative"]] if row.get("negative") is not None else row.get("negatives") or []
    if not isinstance(negatives, list):
        raise InputError("'negatives' must be a list")
    query = item_from_value(row["query"], root, "query")
    if text_or_none(row.get("instruction")) is not None:
        if query.instruction is not None:
            raise InputError("the query has an instruction twice (top-level and inside 'query')")
        query = query.with_instruction(text_or_none(row["instruction"]))
    return TrainingExample(
        query=query,
        positives=[item_from_value(v, root, f"positives[{i}]") for i, v in enumerate(positives)],
        negatives=[item_from_value(v, root, f"negatives[{i}]") for i, v in enumerate(negatives)],
        source=str(row.get("source") or default_source),
    )
