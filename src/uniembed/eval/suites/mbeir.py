"""M-BEIR: 16 dataset-task pairs, recall@5 (recall@10 for the fashion sets), local or global pool.

Layout (`--data DIR`, the UniIR release):
    DIR/query/test/mbeir_<dataset>_task<id>_test.jsonl
    DIR/cand_pool/local/mbeir_<dataset>_task<id>_cand_pool.jsonl      (--pool local)
    DIR/cand_pool/global/mbeir_union_test_cand_pool.jsonl              (--pool global, read once)
    DIR/qrels/test/mbeir_<dataset>_task<id>_test_qrels.txt            (optional; else pos_cand_list)
    DIR/instructions/query_instructions.tsv                            (the 4 paraphrases; seeded draw)
    DIR/mbeir_images/...                                               (image paths resolve against DIR)
Task names are "<dataset>_task<id>" (e.g. "visualnews_task0"); meta-task is the query->candidate modality.
"""
from __future__ import annotations

import re
from pathlib import Path

from ...data.examples import EvalTask
from ...data.readers.mbeir import read_mbeir, read_pool
from ...errors import InputError
from .base import Suite, SuiteOptions, register, select

TASK_MODALITY = {0: "t->i", 1: "t->t", 2: "t->(i,t)", 3: "i->t", 4: "i->i", 6: "(i,t)->t", 7: "(i,t)->i", 8: "(i,t)->(i,t)"}
_QUERY_FILE = re.compile(r"^mbeir_(?P<dataset>.+)_task(?P<task>\d+)_test\.jsonl$")


def query_files(data: Path) -> dict[str, tuple[str, int, Path]]:
    folder = data / "query" / "test"
    if not folder.is_dir():
        raise InputError("no query/test folder", path=data, fix="point --data at the M-BEIR root (query/, cand_pool/, qrels/)")
    found = {}
    for path in sorted(folder.glob("mbeir_*_test.jsonl")):
        match = _QUERY_FILE.match(path.name)
        if match:
            dataset, task = match.group("dataset"), int(match.group("task"))
            found[f"{dataset}_task{task}"] = (dataset, task, path)
    return found


def load_mbeir(data: Path, options: SuiteOptions) -> list[EvalTask]:
    found = query_files(data)
    instructions = data / "instructions" / "query_instructions.tsv"
    instructions = instructions if instructions.exists() else None
    global_pool = None
    if options.pool == "global":
        path = data / "cand_pool" / "global" / "mbeir_union_test_cand_pool.jsonl"
        if not path.exists():
            raise InputError("global candidate pool not found", path=path, fix="use --pool local or add the union pool")
        global_pool = read_pool(path, data)
    tasks = []
    for name in select(list(found), options.datasets, "mbeir"):
        dataset, task_id, queries = found[name]
        pool = global_pool if global_pool is not None else data / "cand_pool" / "local" / f"mbeir_{dataset}_task{task_id}_cand_pool.jsonl"
        qrels = data / "qrels" / "test" / f"mbeir_{dataset}_task{task_id}_test_qrels.txt"
        task = read_mbeir(queries, pool, qrels if qrels.exists() else None, media_root=data, instructions=instructions,
                          dataset=dataset, seed=options.seed, name=name)
        task.meta_task = TASK_MODALITY.get(task_id, f"task{task_id}")
        tasks.append(task)
    return tasks


register(Suite("mbeir", "M-BEIR: 16 dataset-task pairs, recall@5 (@10 fashion), --pool local|global", load_mbeir,
               layout="DIR/query/test/, DIR/cand_pool/{local,global}/, DIR/qrels/test/, DIR/instructions/",
               pools=("local", "global")))
