"""M-BEIR (UniIR): queries, candidate pools, qrels and the seeded random instruction.

    queries   jsonl: qid ("dataset_id:n"), query_txt, query_img_path, query_modality, query_src_content,
              pos_cand_list, neg_cand_list (candidate dids)
    pool      jsonl: did, txt, img_path, modality, src_content   (a local pool per dataset-task, or the
              global union; the reader ranks each query against whichever pool it is given)
    qrels     text:  "qid 0 did relevance task_id" per line
    instructions  tsv with a header `dataset  query_modality  cand_modality  prompt_1 ... prompt_4`
              (or jsonl: {"dataset", "query_modality", "cand_modality", "instructions": [...]})
Image paths are relative to the M-BEIR root (the folder holding `mbeir_images/`, found by default).

Each query gets one of the 4 paraphrases of its (dataset, query modality, candidate modality), drawn at
random with a fixed seed (per query id, so the draw does not depend on file order), even at test time.
The protocol's "{instruction} {query}" is produced by the template from `Item.instruction` (or inline with
`inline_instruction=True`); candidates get no instruction. Scored by recall@5 in M-BEIR's sense (a hit if
any relevant candidate is in the top 5: `hit@5`), recall@10 (`hit@10`) for Fashion200K and FashionIQ.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask, TrainingExample
from .catalog import MBEIR_RECALL_AT_10, normalise_name
from .common import (ReadReport, RowGuard, as_text_list, iter_fields, iter_jsonl, logger, read_rows, require_file,
                     resolve_media, text_or_none)
from .pool import hit_chance

QUERY_COLUMNS = ("qid", "query_txt", "query_img_path", "query_modality", "pos_cand_list")
POOL_COLUMNS = ("did", "txt", "img_path", "modality")


def normalise_modality(modality: str) -> str:
    """'text,image' and 'image, text' are the same modality."""
    return ",".join(sorted(part.strip().lower() for part in str(modality).split(",") if part.strip()))


@dataclass
class Instructions:
    """Instruction paraphrases per (dataset, query modality, candidate modality)."""

    by_key: dict[tuple[str, str, str], list[str]]
    path: str = ""

    def key(self, dataset: str, query_modality: str, cand_modality: str) -> tuple[str, str, str]:
        return normalise_name(dataset), normalise_modality(query_modality), normalise_modality(cand_modality)

    def draw(self, dataset: str, query_modality: str, cand_modality: str, query_id: str, seed: int) -> str:
        """One paraphrase, drawn with a generator seeded by (seed, query id): the same draw on every run."""
        choices = self.by_key.get(self.key(dataset, query_modality, cand_modality))
        if not choices:
            raise InputError(f"no instruction for dataset '{dataset}', query modality '{query_modality}', "
                             f"candidate modality '{cand_modality}' in '{self.path}'",
                             fix="add a line for this combination to the instruction file")
        return random.Random(f"{seed}:{query_id}").choice(choices)


def read_instructions(path: str | os.PathLike) -> Instructions:
    """Load an M-BEIR instruction file (TSV with a header, or JSONL)."""
    file = require_file(path, "instruction file")
    table: dict[tuple[str, str, str], list[str]] = {}
    instructions = Instructions(table, str(file))
    if file.suffix == ".jsonl":
        guard = RowGuard(file, False, None)
        for number, row in iter_jsonl(file, guard):
            prompts = row.get("instructions")
            if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts) or not prompts:
                raise InputError("'instructions' must be a non-empty list of strings", path=file, row=number)
            _add(table, instructions, row, prompts, file, number)
        return instructions
    header: list[str] | None = None
    for number, fields in iter_fields(file, "\t"):
        if header is None:
            header = [normalise_name(f) for f in fields]
            has_cand = bool({"candmodality", "candidatemodality"} & set(header))
            missing = sorted({"dataset", "querymodality"} - set(header)) + ([] if has_cand else ["cand_modality"])
            if missing:
                raise InputError(f"instruction file header lacks {missing}", path=file, row=number,
                                 fix="use columns dataset, query_modality, cand_modality, prompt_1..prompt_4")
            continue
        row = dict(zip(header, fields))
        row["cand_modality"] = row.get("candmodality", row.get("candidatemodality"))
        row["query_modality"] = row.get("querymodality")
        prompts = [value for name, value in zip(header, fields)
                   if name.startswith(("prompt", "instruction")) and value]
        if not prompts:
            raise InputError("line has no instruction", path=file, row=number)
        _add(table, instructions, row, prompts, file, number)
    return instructions


def _add(table, instructions: Instructions, row: Mapping[str, Any], prompts: list[str], file: Path, number: int) -> None:
    if not row.get("dataset") or not row.get("query_modality") or not row.get("cand_modality"):
        raise InputError("line lacks dataset, query_modality or cand_modality", path=file, row=number)
    table[instructions.key(row["dataset"], row["query_modality"], row["cand_modality"])] = [p.strip() for p in prompts]


@dataclass
class Pool:
    """An M-BEIR candidate pool: items in file order, their dids and modalities."""

    items: list[Item]
    ids: list[str]
    modalities: list[str]
    index: dict[str, int]


def read_pool(path: str | os.PathLike, media_root: str | os.PathLike | None = None, *,
              skip_bad_rows: bool = False, report: ReadReport | None = None) -> Pool:
    """A candidate pool jsonl; candidates carry no instruction."""
    file = require_file(path, "candidate pool")
    root = media_root if media_root is not None else mbeir_root(file)
    pool = Pool([], [], [], {})
    guard = RowGuard(file, skip_bad_rows, report)
    for number, row in read_rows(file, POOL_COLUMNS, guard):
        def build() -> None:
            did = text_or_none(row["did"])
            if did is None:
                raise InputError("empty did")
            if did in pool.index:
                raise InputError(f"duplicate did '{did}'")
            item = Item(text=text_or_none(row["txt"]), image=resolve_media(row["img_path"], root))
            if item.modality == 0:
                raise InputError(f"candidate '{did}' is empty (no txt and no img_path)")
            pool.index[did] = len(pool.items)
            pool.items.append(item)
            pool.ids.append(did)
            pool.modalities.append(normalise_modality(row["modality"]))
        guard.build(number, build)
    guard.finish()
    if not pool.items:
        raise InputError("candidate pool is empty", path=file)
    return pool


def read_qrels(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """qid -> {did: relevance} from "qid 0 did relevance task_id" lines (relevance > 0 kept)."""
    file = require_file(path, "qrels")
    qrels: dict[str, dict[str, float]] = {}
    for number, fields in iter_fields(file):
        if len(fields) < 4:
            raise InputError(f"expected 'qid 0 did relevance task_id', got {len(fields)} fields", path=file, row=number)
        try:
            relevance = float(fields[3])
        except ValueError:
            raise InputError(f"relevance {fields[3]!r} is not a number", path=file, row=number) from None
        if relevance > 0:
            qrels.setdefault(fields[0], {})[fields[2]] = relevance
    return qrels


def mbeir_root(file: Path) -> Path:
    """The M-BEIR root above a file (the folder holding `mbeir_images/`), else the file's folder."""
    for parent in file.resolve().parents:
        if (parent / "mbeir_images").is_dir():
            return parent
    return file.parent


def dataset_from_filename(file: Path) -> str | None:
    """'mscoco' from 'mbeir_mscoco_task0_test.jsonl'."""
    parts = file.stem.split("_")
    return parts[1] if len(parts) > 2 and parts[0] == "mbeir" else None


class _QueryBuilder:
    """Query items with their drawn instruction."""

    def __init__(self, file: Path, root: Any, dataset: str | None, instructions: Instructions | None, seed: int,
                 inline: bool) -> None:
        self.root, self.instructions, self.seed, self.inline = root, instructions, seed, inline
        self.dataset = dataset or dataset_from_filename(file)
        if instructions is not None and self.dataset is None:
            raise InputError("cannot tell the data set of this query file", path=file,
                             fix="pass dataset= (e.g. 'MSCOCO')")
        if instructions is None:
            logger.warning("%s: no instruction file given; M-BEIR queries get no instruction", file)

    def query(self, row: Mapping[str, Any], cand_modality: str) -> tuple[str, Item]:
        qid = text_or_none(row["qid"])
        if qid is None:
            raise InputError("empty qid")
        text = text_or_none(row["query_txt"])
        image = resolve_media(row["query_img_path"], self.root)
        instruction = None
        if self.instructions is not None:
            instruction = self.instructions.draw(self.dataset, row["query_modality"], cand_modality, qid, self.seed)
        if self.inline and instruction:
            item = Item(text=f"{instruction} {text or ''}".strip(), image=image)
        else:
            item = Item(text=text, image=image, instruction=instruction)
        if item.modality == 0:
            raise InputError(f"query '{qid}' is empty (no query_txt and no query_img_path)")
        return qid, item


def _dids(row: Mapping[str, Any], column: str, pool: Pool, pool_path: str) -> list[str]:
    dids = [d for d in as_text_list(row.get(column), column) if d]
    missing = [d for d in dids if d not in pool.index]
    if missing:
        raise InputError(f"{column} id(s) {missing[:5]} not in the pool '{pool_path}'",
                         fix="use the pool these queries were built against")
    return dids


def _load_instructions(instructions: str | os.PathLike | Instructions | None) -> Instructions | None:
    if instructions is None or isinstance(instructions, Instructions):
        return instructions
    return read_instructions(instructions)


def read_mbeir(
    queries_path: str | os.PathLike,
    pool: str | os.PathLike | Pool,
    qrels_path: str | os.PathLike | None = None,
    *,
    media_root: str | os.PathLike | None = None,
    instructions: str | os.PathLike | Instructions | None = None,
    dataset: str | None = None,
    seed: int = 0,
    name: str | None = None,
    inline_instruction: bool = False,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    max_rows: int | None = None,
) -> EvalTask:
    """One M-BEIR dataset-task ranked against `pool` (its local pool, or the global one, read once and
    passed as a `Pool` to share it across tasks). Relevance from `qrels_path`, else `pos_cand_list`."""
    file = require_file(queries_path, "queries")
    root = media_root if media_root is not None else mbeir_root(file)
    pool_name = str(pool) if not isinstance(pool, Pool) else "the given pool"
    if not isinstance(pool, Pool):
        pool = read_pool(pool, root, skip_bad_rows=skip_bad_rows, report=report)
    qrels = read_qrels(qrels_path) if qrels_path is not None else None
    builder = _QueryBuilder(file, root, dataset, _load_instructions(instructions), seed, inline_instruction)
    guard = RowGuard(file, skip_bad_rows, report)
    query_ids: list[str] = []
    queries: list[Item] = []
    relevance: list[dict[int, float]] = []
    for number, row in read_rows(file, QUERY_COLUMNS, guard):
        if max_rows is not None and len(queries) >= max_rows:
            break
        def build() -> tuple[str, Item, dict[int, float]]:
            qid = str(row["qid"])
            if qrels is not None:
                relevant = qrels.get(qid, {})
                missing = [d for d in relevant if d not in pool.index]
                if missing:
                    raise InputError(f"qrels name did(s) {missing[:5]} that are not in the pool '{pool_name}'")
            else:
                relevant = {d: 1.0 for d in _dids(row, "pos_cand_list", pool, pool_name)}
            if not relevant:
                raise InputError(f"query '{qid}' has no relevant candidate",
                                 fix="check the qrels file matches the query file")
            # the candidate modality of the instruction is that of the (first) positive
            listed = [d for d in as_text_list(row.get("pos_cand_list"), "pos_cand_list") if d in relevant]
            target = listed[0] if listed else min(relevant, key=lambda d: pool.index[d])
            qid, item = builder.query(row, pool.modalities[pool.index[target]])
            return qid, item, {pool.index[d]: r for d, r in relevant.items()}
        entry = guard.build(number, build)
        if entry is not None:
            query_ids.append(entry[0])
            queries.append(entry[1])
            relevance.append(entry[2])
    guard.finish()
    if not queries:
        raise InputError("no usable query", path=file)
    task_name = name or file.stem
    k = 10 if normalise_name(builder.dataset or task_name) in MBEIR_RECALL_AT_10 else 5
    return EvalTask(
        name=task_name, queries=queries, candidates=pool.items, qrels=relevance, metric=f"hit@{k}",
        meta_task="mbeir", modality_group="image",
        chance=hit_chance([len(pool.items)] * len(queries), [len(r) for r in relevance], k),
        query_ids=query_ids, candidate_ids=pool.ids,
    )


def read_mbeir_train(
    queries_path: str | os.PathLike,
    pool: str | os.PathLike | Pool,
    *,
    media_root: str | os.PathLike | None = None,
    instructions: str | os.PathLike | Instructions | None = None,
    dataset: str | None = None,
    seed: int = 0,
    source: str | None = None,
    inline_instruction: bool = False,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    max_rows: int | None = None,
) -> list[TrainingExample]:
    """Training examples from an M-BEIR training query file, `pos_cand_list`/`neg_cand_list` resolved
    against the candidate pool (dids kept on each example)."""
    file = require_file(queries_path, "queries")
    root = media_root if media_root is not None else mbeir_root(file)
    pool_name = str(pool) if not isinstance(pool, Pool) else "the given pool"
    if not isinstance(pool, Pool):
        pool = read_pool(pool, root, skip_bad_rows=skip_bad_rows, report=report)
    builder = _QueryBuilder(file, root, dataset, _load_instructions(instructions), seed, inline_instruction)
    name = source or builder.dataset or file.stem
    guard = RowGuard(file, skip_bad_rows, report)
    examples: list[TrainingExample] = []
    for number, row in read_rows(file, QUERY_COLUMNS, guard):
        if max_rows is not None and len(examples) >= max_rows:
            break
        def build() -> TrainingExample:
            positives = _dids(row, "pos_cand_list", pool, pool_name)
            if not positives:
                raise InputError(f"query '{row['qid']}' has an empty pos_cand_list")
            negatives = _dids(row, "neg_cand_list", pool, pool_name)
            qid, query = builder.query(row, pool.modalities[pool.index[positives[0]]])
            return TrainingExample(query=query, positives=[pool.items[pool.index[d]] for d in positives],
                                   negatives=[pool.items[pool.index[d]] for d in negatives], source=name,
                                   query_id=qid, positive_ids=positives, negative_ids=negatives)
        example = guard.build(number, build)
        if example is not None:
            examples.append(example)
    guard.finish()
    return examples
