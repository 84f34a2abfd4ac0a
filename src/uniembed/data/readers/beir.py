"""A BEIR-style folder of one's own data: a corpus, queries and graded qrels, ranked against the whole corpus.

Layout (`--data DIR`):
    DIR/corpus.jsonl        one object per line: `_id`, `title`, `text`; optional `image` (a path relative to
                            DIR) and `video` (a video file or a folder of frames, relative to DIR)
    DIR/queries.jsonl       `_id`, `text`; optional `image`, `video`, `instruction`
    DIR/qrels/<split>.tsv   a header line `query-id<TAB>corpus-id<TAB>score`, then one graded pair per line
The field names are BEIR's (beir-cellar/beir, beir/datasets/data_loader.py: `_id`, `title`, `text`, and the
qrels header). A document's text is its title and text joined by one space, as BEIR's SentenceBERT model
joins them (beir/retrieval/models/sentence_bert.py, encode_corpus: `(title + " " + text).strip()`).
Pairs with score <= 0 are dropped; a query without a relevant document is left out (as BEIR's loader keeps
only the queries its qrels name). Every document is its own candidate, so the ranking is the one BEIR
computes even when two documents have the same content (the encoder still embeds such content once).
"""
from __future__ import annotations

import os
from pathlib import Path

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask
from .common import RowGuard, iter_fields, iter_jsonl, logger, resolve_media, resolve_video, text_or_none
from .pool import ndcg_chance

CORPUS_FIELDS = ("_id", "title", "text")
QUERY_FIELDS = ("_id", "text")
QRELS_HEADER = ("query-id", "corpus-id", "score")
MAIN_METRIC = "ndcg@10"
EXTRA_METRICS = ("recall@1", "recall@5", "recall@10", "recall@100", "mrr@10")
LAYOUT = ("DIR/corpus.jsonl (_id, title, text[, image, video]), DIR/queries.jsonl (_id, text[, image, video, "
          "instruction]), DIR/qrels/<split>.tsv (header: query-id, corpus-id, score)")


def beir_splits(folder: str | os.PathLike) -> list[str]:
    """The splits a folder has qrels for (`qrels/<split>.tsv`), sorted."""
    return sorted(path.stem for path in (Path(folder) / "qrels").glob("*.tsv") if path.is_file())


def read_beir(folder: str | os.PathLike, split: str = "test", *, name: str | None = None) -> EvalTask:
    """One split of a BEIR-style folder as a global-ranking task scored by nDCG@10 (see the module doc)."""
    folder = Path(folder)
    corpus_ids, documents = _read_items(_require(folder / "corpus.jsonl"), folder, CORPUS_FIELDS, "document")
    query_ids, queries = _read_items(_require(folder / "queries.jsonl"), folder, QUERY_FIELDS, "query")
    qrels = read_qrels(_require(folder / "qrels" / f"{split}.tsv"), query_ids, corpus_ids)
    kept = [i for i, qid in enumerate(query_ids) if qrels.get(qid)]
    named = {qid for qid in qrels}
    if len(kept) < len(named):
        logger.info("%s: %d queries of the qrels have no relevant document (score > 0) and are left out",
                    name or split, len(named) - len(kept))
    if not kept:
        raise InputError(f"no query of split '{split}' has a relevant document (score > 0)",
                         path=folder / "qrels" / f"{split}.tsv", fix="give each query at least one pair with score > 0")
    relevance = [qrels[query_ids[i]] for i in kept]
    return EvalTask(
        name=name or split,
        queries=[queries[i] for i in kept],
        candidates=documents,
        qrels=relevance,
        metric=MAIN_METRIC,
        extra_metrics=EXTRA_METRICS,
        chance=ndcg_chance(len(documents), [list(r.values()) for r in relevance], 10),
        meta_task="",
        modality_group="",
        query_ids=[query_ids[i] for i in kept],
        candidate_ids=corpus_ids,
    )


def _require(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"{path.name} not found", path=path, fix=f"a BEIR-style folder holds {LAYOUT}")
    return path


def _read_items(path: Path, root: Path, required: tuple[str, ...], what: str) -> tuple[list[str], list[Item]]:
    """(ids, items) of corpus.jsonl or queries.jsonl, in file order; every bad line names file and line."""
    guard = RowGuard(path, False, None)
    ids: list[str] = []
    items: list[Item] = []
    seen: dict[str, int] = {}
    for number, row in iter_jsonl(path, guard):
        missing = [key for key in required if key not in row]
        if missing:
            raise InputError(f"missing field(s) {missing}", path=path, row=number,
                             fix=f"each line needs {list(required)}")
        item_id = text_or_none(row["_id"])
        if item_id is None:
            raise InputError("empty _id", path=path, row=number, fix="give every line an _id")
        if item_id in seen:
            raise InputError(f"_id '{item_id}' repeats line {seen[item_id]}", path=path, row=number,
                             fix="give every line its own _id")
        seen[item_id] = number
        item = guard.build(number, lambda: _item(row, root, what))  # media errors: located at this line
        ids.append(item_id)
        items.append(item)
    if not items:
        raise InputError(f"no {what} in the file", path=path, fix=f"a BEIR-style folder holds {LAYOUT}")
    return ids, items


def _item(row: dict, root: Path, what: str) -> Item:
    texts = [row.get("title"), row.get("text")] if what == "document" else [row.get("text")]
    if any(value is not None and not isinstance(value, str) for value in texts):
        raise InputError("title and text must be strings")
    text = " ".join(t for t in texts if t).strip() or None
    instruction = row.get("instruction") if what == "query" else None
    if instruction is not None and not isinstance(instruction, str):
        raise InputError("instruction must be a string")
    item = Item(text=text, image=resolve_media(row.get("image"), root, f"{what} image"),
                video=resolve_video(row.get("video"), root), instruction=text_or_none(instruction))
    if item.modality == 0:
        raise InputError(f"the {what} is empty (no text, image or video)")
    return item


def read_qrels(path: Path, query_ids: list[str], corpus_ids: list[str]) -> dict[str, dict[int, float]]:
    """query id -> {corpus position: grade > 0}; an id missing from the queries or the corpus is an error that
    names the line and the id (a repeated pair keeps its higher grade)."""
    queries = set(query_ids)
    corpus = {cid: position for position, cid in enumerate(corpus_ids)}
    relevance: dict[str, dict[int, float]] = {}
    lines = iter_fields(path, "\t")
    first = next(lines, None)
    if first is None or tuple(first[1][:3]) != QRELS_HEADER:
        raise InputError(f"the first line must be the header {'<TAB>'.join(QRELS_HEADER)}", path=path, row=1,
                         fix="add the header line (tab-separated)")
    for number, fields in lines:
        if len(fields) != 3:
            raise InputError(f"expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}",
                             path=path, row=number, fix="separate the fields with tabs")
        query_id, corpus_id, score = fields
        if query_id not in queries:
            raise InputError(f"query-id '{query_id}' is not in queries.jsonl", path=path, row=number,
                             fix="add the query to queries.jsonl or drop the line")
        if corpus_id not in corpus:
            raise InputError(f"corpus-id '{corpus_id}' is not in corpus.jsonl", path=path, row=number,
                             fix="add the document to corpus.jsonl or drop the line")
        try:
            grade = float(score)
        except ValueError:
            raise InputError(f"score {score!r} is not a number", path=path, row=number,
                             fix="give a graded relevance (0, 1, 2, ...)") from None
        if grade > 0:
            target = relevance.setdefault(query_id, {})
            target[corpus[corpus_id]] = max(grade, target.get(corpus[corpus_id], 0.0))
        else:
            relevance.setdefault(query_id, {})
    return relevance
