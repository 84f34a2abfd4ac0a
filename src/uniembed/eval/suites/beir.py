"""beir: your own data in the BEIR layout, each query ranked against the whole corpus (nDCG@10 main score).

`--data DIR` holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv (`data/readers/beir.py` documents
the fields). Each qrels file is one task named by its split; `--datasets` picks splits (default: `test`
when there is one, else every split). Reported: nDCG@10, recall@1/5/10/100 and MRR@10.
"""
from __future__ import annotations

from pathlib import Path

from ...data.examples import EvalTask
from ...data.readers.beir import CORPUS_FIELDS, LAYOUT, QUERY_FIELDS, QRELS_HEADER, beir_splits, read_beir
from ...errors import InputError
from .base import Suite, SuiteOptions, register, select
from .layout import Check


def _splits(data: Path, options: SuiteOptions) -> list[str]:
    found = beir_splits(data)
    if not found:
        raise InputError("no qrels/<split>.tsv found", path=data / "qrels", fix=f"a BEIR-style folder holds {LAYOUT}")
    if options.datasets is None:
        return ["test"] if "test" in found else found
    return select(found, options.datasets, "beir")


def load_beir(data: Path, options: SuiteOptions) -> list[EvalTask]:
    return [read_beir(data, split) for split in _splits(data, options)]


def check_beir(data: Path, options: SuiteOptions) -> list[Check]:
    """One row per split: its three files and their fields; reading it names the first bad line, if any."""
    splits = options.datasets or (_splits(data, options) if beir_splits(data) else ["test"])
    checks = []
    for split in splits:
        files = [data / "corpus.jsonl", data / "queries.jsonl", data / "qrels" / f"{split}.tsv"]
        check = Check(split, "your own data (BEIR layout)", data if data.is_dir() else None, [data],
                      files=", ".join(str(p.relative_to(data)) for p in files),
                      columns=tuple(f"corpus.{c}" for c in CORPUS_FIELDS) + tuple(f"queries.{c}" for c in QUERY_FIELDS)
                      + tuple(f"qrels.{c}" for c in QRELS_HEADER))
        missing = [p for p in files if not p.is_file()]
        check.problems += [f"{p} not found" for p in missing]
        if data.is_dir() and not missing:
            try:
                read_beir(data, split)
            except InputError as exc:
                check.problems.append(str(exc))
        checks.append(check)
    return checks


register(Suite("beir", "your own data, BEIR layout: global ranking, nDCG@10, recall@1/5/10/100, MRR@10", load_beir,
               layout=LAYOUT, check=check_beir))
