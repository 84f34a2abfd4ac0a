"""An M-BEIR slice in the TIGER-Lab/M-BEIR layout (as UniIR reads it): text -> image (task 0), local pool.

    mbeir/query/test/mbeir_<name>_test.jsonl            qid, query_txt, query_img_path, query_modality,
                                                        query_src_content, pos_cand_list, neg_cand_list, task_id
    mbeir/cand_pool/local/mbeir_<name>_cand_pool.jsonl  did, txt, img_path, modality, src_content
    mbeir/qrels/test/mbeir_<name>_test_qrels.txt        "qid 0 did 1 task_id" per line
    mbeir/mbeir_images/<Task>/*.png   (img_path is relative to mbeir/, the folder holding mbeir_images/)
`<name>` is `MBEIR_NAME` ("<dataset>_task<id>").
Ids read "dataset_id:n" with the synthetic data set id 90. Scored recall@5 in M-BEIR's sense (hit@5).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .examples import SynthExample
from .writers import write_jsonl

DATASET_ID = 90
TASK_ID = 0  # text -> image
MBEIR_NAME = f"synt2i_task{TASK_ID}"


def mbeir_paths(root: Path, name: str = MBEIR_NAME) -> tuple[Path, Path, Path]:
    """(queries, local pool, qrels) of one M-BEIR dataset-task under an M-BEIR root."""
    return (root / "query" / "test" / f"mbeir_{name}_test.jsonl",
            root / "cand_pool" / "local" / f"mbeir_{name}_cand_pool.jsonl",
            root / "qrels" / "test" / f"mbeir_{name}_test_qrels.txt")


def mbeir_files(root: Path, examples: list[SynthExample], media: Any) -> tuple[int, int]:
    """Write queries/pool/qrels for examples whose query is a caption and whose candidates are images.

    `media` is the generator's MediaWriter (rooted at mbeir/), which names and queues the pictures."""
    queries, pool, qrels = [], [], []
    for i, ex in enumerate(examples):
        qid = f"{DATASET_ID}:{i + 1}"
        dids = []
        for k, (_, picture) in enumerate(ex.candidates):
            did = f"{DATASET_ID}:{len(pool) + 1}"
            pool.append({"did": did, "txt": None, "img_path": media.path(picture, f"{i:05d}_c{k:02d}"),
                         "modality": "image", "src_content": None})
            dids.append(did)
        caption = ex.query_text.split(": ", 1)[1].strip()
        queries.append({"qid": qid, "query_txt": caption, "query_img_path": None, "query_modality": "text",
                        "query_src_content": None, "pos_cand_list": dids[:1], "neg_cand_list": dids[1:],
                        "task_id": TASK_ID})
        qrels.append(f"{qid} 0 {dids[0]} 1 {TASK_ID}")
    query_file, pool_file, qrels_file = mbeir_paths(root)
    write_jsonl(query_file, queries)
    write_jsonl(pool_file, pool)
    qrels_file.parent.mkdir(parents=True, exist_ok=True)
    qrels_file.write_text("\n".join(qrels) + "\n", encoding="utf-8")
    return len(queries), len(pool)
