"""M-BEIR: 16 dataset-task pairs, recall@5 (recall@10 for the fashion sets), local or global pool.

Layout (`--data DIR`: the local copy of the TIGER-Lab/M-BEIR repository, `DIR` itself or
`DIR/TIGER-Lab/M-BEIR`), as TIGER-AI-Lab/UniIR@98dc570 reads it (src/common/mbeir_embedder.py:270-277,
src/common/mbeir_retriever.py:394-395, configs_scripts/*/eval/inbatch/{embed,retrieval}.yaml):
    DIR/query/test/mbeir_<dataset>_task<id>_test.jsonl
    DIR/cand_pool/local/mbeir_<dataset>_task<id>_cand_pool.jsonl      (--pool local; MSCOCO's test pools are
                                                                       mbeir_mscoco_task{0,3}_test_cand_pool.jsonl)
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

MBEIR_REPO = "TIGER-Lab/M-BEIR"
# MSCOCO has separate val and test pools (embed.yaml: correspond_cand_pools_name "mscoco_task0_test")
LOCAL_POOL_NAME = {"mscoco_task0": "mscoco_task0_test", "mscoco_task3": "mscoco_task3_test"}
TASK_MODALITY = {0: "t->i", 1: "t->t", 2: "t->(i,t)", 3: "i->t", 4: "i->i", 6: "(i,t)->t", 7: "(i,t)->i", 8: "(i,t)->(i,t)"}
_QUERY_FILE = re.compile(r"^mbeir_(?P<dataset>.+)_task(?P<task>\d+)_test\.jsonl$")


def query_files(data: Path) -> dict[str, tuple[str, int, Path]]:
    folder = data / "query" / "test"
    if not folder.is_dir():
        raise InputError(f"no query/test folder; looked for '{folder}' and '{data / MBEIR_REPO / 'query' / 'test'}'",
                         path=data, fix="point --data at the local copy of TIGER-Lab/M-BEIR (query/, cand_pool/, "
                                        "qrels/, instructions/, mbeir_images/) or at a root holding TIGER-Lab/M-BEIR")
    found = {}
    for path in sorted(folder.glob("mbeir_*_test.jsonl")):
        match = _QUERY_FILE.match(path.name)
        if match:
            dataset, task = match.group("dataset"), int(match.group("task"))
            found[f"{dataset}_task{task}"] = (dataset, task, path)
    return found


def mbeir_root(data: Path) -> Path:
    """DIR itself, or DIR/TIGER-Lab/M-BEIR (one folder per repository under a data root)."""
    nested = data / MBEIR_REPO
    return nested if not (data / "query").is_dir() and (nested / "query").is_dir() else data


def local_pool(data: Path, dataset: str, task_id: int) -> Path:
    name = f"{dataset}_task{task_id}"
    return data / "cand_pool" / "local" / f"mbeir_{LOCAL_POOL_NAME.get(name, name)}_cand_pool.jsonl"


def load_mbeir(data: Path, options: SuiteOptions) -> list[EvalTask]:
    data = mbeir_root(data)
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
        pool = global_pool if global_pool is not None else local_pool(data, dataset, task_id)
        qrels = data / "qrels" / "test" / f"mbeir_{dataset}_task{task_id}_test_qrels.txt"
        task = read_mbeir(queries, pool, qrels if qrels.exists() else None, media_root=data, instructions=instructions,
                          dataset=dataset, seed=options.seed, name=name)
        task.meta_task = TASK_MODALITY.get(task_id, f"task{task_id}")
        tasks.append(task)
    return tasks


# The 16 test dataset-task pairs (UniIR configs_scripts/*/eval/inbatch/embed.yaml test_datasets_config)
MBEIR_TASKS = ["visualnews_task0", "mscoco_task0", "fashion200k_task0", "webqa_task1", "edis_task2", "webqa_task2",
               "visualnews_task3", "mscoco_task3", "fashion200k_task3", "nights_task4", "oven_task6", "infoseek_task6",
               "fashioniq_task7", "cirr_task7", "oven_task8", "infoseek_task8"]


def check_mbeir(data: Path, options: SuiteOptions) -> list:
    """Per dataset-task: its query, pool and qrels files and columns, and the image folder."""
    from ...data.readers.hub import file_columns
    from ...data.readers.mbeir import POOL_COLUMNS, QUERY_COLUMNS
    from .layout import Check

    root = mbeir_root(data)
    checks = []
    for name in options.datasets or MBEIR_TASKS:
        dataset, _, task = name.rpartition("_task")
        queries = root / "query" / "test" / f"mbeir_{name}_test.jsonl"
        pool = (root / "cand_pool" / "global" / "mbeir_union_test_cand_pool.jsonl" if options.pool == "global"
                else local_pool(root, dataset, int(task)) if task.isdigit() else root / "cand_pool" / "local")
        qrels = root / "qrels" / "test" / f"mbeir_{name}_test_qrels.txt"
        check = Check(name, MBEIR_REPO, root if queries.is_file() else None, [queries],
                      files=", ".join(str(p.relative_to(root)) for p in (queries, pool, qrels)),
                      columns=QUERY_COLUMNS + tuple(f"pool.{c}" for c in POOL_COLUMNS))
        for path, columns, label in ((queries, QUERY_COLUMNS, "queries"), (pool, POOL_COLUMNS, "pool")):
            if not path.is_file():
                check.problems.append(f"{label}: {path} not found")
                continue
            missing = [c for c in columns if c not in file_columns(path)]
            if missing:
                check.problems.append(f"{label}: {path} lacks column(s) {missing}")
        check.media.append(("images", root / "mbeir_images", (root / "mbeir_images").is_dir()))
        checks.append(check)
    return checks


register(Suite("mbeir", "M-BEIR: 16 dataset-task pairs, recall@5 (@10 fashion), --pool local|global", load_mbeir,
               layout="DIR/query/test/, DIR/cand_pool/{local,global}/, DIR/qrels/test/, DIR/instructions/",
               pools=("local", "global"), check=check_mbeir))
