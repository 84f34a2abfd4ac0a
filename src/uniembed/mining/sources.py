"""What mining reads: training queries with their positives, and the pool negatives are drawn from.

Three training formats (the `--format` of `uniembed mine`, detected from the file when "auto"):
    corpus-ids  queries JSONL/parquet + `--corpus`: the pool is the corpus; output rewrites only
                `negative_document_ids` of the queries file (the corpus is never copied).
    jsonl       uniembed's training JSONL: the pool is `--corpus` when given, else the de-duplicated set
                of every row's positives and given negatives; output is JSONL with negatives as items.
    mmeb-train  an MMEB-train parquet (or folder of them): pool and output as for jsonl.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.examples import TrainingExample
from ..data.readers import ReadReport, read_corpus, read_corpus_ids, read_jsonl_examples, read_mmeb_train
from ..errors import ConfigError, InputError
from ..inputs import Item
from ..jsonl import iter_json_lines

FORMATS = ("auto", "corpus-ids", "jsonl", "mmeb-train")


@dataclass
class MiningSource:
    """Training examples, one id per query, and the candidate pool (ids, items, content keys)."""

    format: str
    examples: list[TrainingExample]
    query_ids: list[str]
    pool_ids: list[str]
    pool_items: list[Item]
    inputs: dict[str, Any]
    pool_from_corpus: bool
    report: ReadReport = field(default_factory=ReadReport)
    _pool_keys: list[str] | None = None
    _rows_by_id: dict[str, int] | None = None
    _rows_by_key: dict[str, list[int]] | None = None

    @property
    def writes_ids(self) -> bool:
        """corpus-ids output rewrites id lists; the other formats write items."""
        return self.format == "corpus-ids"

    @property
    def pool_keys(self) -> list[str]:
        if self._pool_keys is None:
            self._pool_keys = [item.content_key() for item in self.pool_items]
        return self._pool_keys

    def positive_rows(self, example: TrainingExample) -> set[int]:
        """Pool rows that ARE the example's positives: by document id when both sides have ids, else by content."""
        if self._rows_by_id is None:
            self._rows_by_id = {docid: row for row, docid in enumerate(self.pool_ids)}
            self._rows_by_key = {}
            for row, key in enumerate(self.pool_keys):
                self._rows_by_key.setdefault(key, []).append(row)
        if example.positive_ids and self.pool_from_corpus:
            return {self._rows_by_id[docid] for docid in example.positive_ids if docid in self._rows_by_id}
        return {row for positive in example.positives for row in self._rows_by_key.get(positive.content_key(), [])}


def detect_format(queries: Path, corpus: Path | None) -> str:
    """corpus-ids when the rows hold `query_id`; jsonl for other JSONL; mmeb-train for parquet / folders."""
    if queries.is_dir() or queries.suffix == ".parquet":
        return "corpus-ids" if corpus is not None and queries.suffix == ".parquet" else "mmeb-train"
    for _, row in iter_json_lines(queries):  # the first row decides
        return "corpus-ids" if isinstance(row, dict) and "query_id" in row else "jsonl"
    raise InputError("the queries file is empty", path=queries)


def load_source(queries: str | os.PathLike, corpus: str | os.PathLike | None = None, *, format: str = "auto",
                media_root: str | os.PathLike | None = None, video_root: str | os.PathLike | None = None,
                skip_bad_rows: bool = False) -> MiningSource:
    """Read the training data and build the pool (see the module docstring)."""
    queries = Path(queries)
    corpus = Path(corpus) if corpus is not None else None
    if not queries.exists():
        raise InputError("queries file not found", path=queries, fix="pass the training data with --queries")
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {FORMATS}, got {format!r}")
    fmt = detect_format(queries, corpus) if format == "auto" else format
    report = ReadReport()
    inputs = {"format": fmt, "queries": str(queries.resolve()), "corpus": str(corpus.resolve()) if corpus else None,
              "media_root": str(Path(media_root).resolve()) if media_root else None,
              "video_root": str(Path(video_root).resolve()) if video_root else None}
    corpus_items: dict[str, Item] | None = None
    if corpus is not None:
        # corpus-ids: the same media root `read_corpus_ids` uses, so content keys match its positives;
        # its own read of the corpus fills the report
        corpus_items = read_corpus(corpus, media_root if fmt == "corpus-ids" else None, skip_bad_rows=skip_bad_rows,
                                   report=ReadReport() if fmt == "corpus-ids" else report)
    if fmt == "corpus-ids":
        if corpus is None:
            raise InputError("corpus-ids queries need the corpus", path=queries, fix="pass --corpus corpus.jsonl")
        if queries.suffix == ".parquet":  # checked before encoding anything: the output rewrites the JSONL rows
            raise InputError("mining rewrites corpus-plus-ids queries in JSONL only", path=queries,
                             fix="convert the queries file to JSONL (the corpus may stay parquet)")
        examples = read_corpus_ids(queries, corpus, media_root, skip_bad_rows=skip_bad_rows, report=report)
        query_ids = [str(example.query_id) for example in examples]
        _require_unique(query_ids, queries)
    elif fmt == "jsonl":
        examples = read_jsonl_examples(queries, media_root, skip_bad_rows=skip_bad_rows, report=report)
        query_ids = [f"row{i}" for i in range(len(examples))]
    else:
        examples = read_mmeb_train(queries, media_root, skip_bad_rows=skip_bad_rows, report=report,
                                   video_root=video_root)
        query_ids = [f"row{i}" for i in range(len(examples))]
    if not examples:
        raise InputError("no training rows to mine for", path=queries)
    if corpus_items is not None:
        pool_ids, pool_items = list(corpus_items), list(corpus_items.values())
    else:
        pool_ids, pool_items = targets_pool(examples)
    if not pool_items:
        raise InputError("the candidate pool is empty", path=corpus or queries)
    return MiningSource(fmt, examples, query_ids, pool_ids, pool_items, inputs, corpus_items is not None, report)


def targets_pool(examples: list[TrainingExample]) -> tuple[list[str], list[Item]]:
    """The de-duplicated (by content) positives and given negatives of every row, in first-seen order."""
    seen: dict[str, Item] = {}
    for example in examples:
        for item in [*example.positives, *example.negatives]:
            seen.setdefault(item.content_key(), item)
    return [f"cand{i}" for i in range(len(seen))], list(seen.values())


def _require_unique(query_ids: list[str], path: Path) -> None:
    seen: set[str] = set()
    for query_id in query_ids:
        if query_id in seen:
            raise InputError(f"query_id '{query_id}' appears more than once", path=path,
                             fix="give every query a unique query_id (mined negatives are written per id)")
        seen.add(query_id)


def item_row(item: Item, what: str) -> dict[str, Any]:
    """An item as uniembed JSONL, with media paths made absolute so the file works from any folder."""
    data = item.to_dict()
    for name in ("image", "video"):
        if name in data:
            data[name] = _portable(getattr(item, name), what)
    if "images" in data:
        data["images"] = [_portable(source, what) for source in item.images]
    return data


def _portable(source: Any, what: str) -> Any:
    if isinstance(source, (list, tuple)):
        return [_portable(s, what) for s in source]
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        return text if text.startswith(("data:", "http://", "https://")) else os.path.abspath(text)
    raise InputError(f"{what} holds an in-memory image that cannot be written to JSONL",
                     fix="store media as files, or mine in the corpus-plus-ids format (ids only are written)")


def example_row(example: TrainingExample, negatives: list[Item]) -> dict[str, Any]:
    """A training row in uniembed's JSONL format with the mined negatives."""
    return {"query": item_row(example.query, "query"),
            "positives": [item_row(item, "positive") for item in example.positives],
            "negatives": [item_row(item, "negative") for item in negatives],
            "source": example.source}
