"""Mine one shard of the queries, and merge finished shards into training data plus a report.

A shard embeds the whole pool and its own queries (every `num_shards`-th row starting at `shard_index`),
retrieves each query's top N with `uniembed.index.exact_topk` (the search global-pool evaluation runs),
and applies `selection.select_negatives`. It writes `OUT/shards/shard-<i>-of-<n>.jsonl` (one row per
query) and then `.json` (its header, which marks the shard complete). When every shard of the run is
complete, the shard that finished last merges (so does `uniembed mine --merge --out OUT`):

    OUT/queries.jsonl    corpus-ids input: the queries file with `negative_document_ids` rewritten
    OUT/train.jsonl      other inputs: uniembed training JSONL with the negatives as items
    OUT/negatives.jsonl  per query: query_id, negative ids, their scores and retrieval ranks
    OUT/mixture.yaml     a training mixture that reads the mined data
    OUT/report.json      what each filter removed, and how many queries got fewer negatives than asked
Rows come out in input order, so a sharded run writes exactly what an unsharded one does.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..data.readers import rewrite_negative_ids
from ..encoding import EmbeddingCache, Encoder, encode_distinct
from ..errors import ConfigError, InputError
from ..index.faiss_index import exact_topk
from ..jsonl import iter_json_lines
from ..parallel import World
from .selection import FILTERS, MiningOptions, select_negatives
from .sources import MiningSource, example_row

log = logging.getLogger(__name__)
SHARDS_DIR = "shards"
SHORT_IDS_LISTED = 20


def shard_stem(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}"


def run_signature(source: MiningSource, options: MiningOptions, model: str, num_shards: int) -> str:
    """Identifies one mining run: shards of different runs are never merged together."""
    payload = json.dumps([source.inputs, options.to_dict(), model, num_shards], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def mine_shard(encoder: Encoder, source: MiningSource, options: MiningOptions, out: str | os.PathLike, *,
               shard_index: int = 0, num_shards: int = 1, batch_size: int = 32, cache_dir: str | os.PathLike | None = None,
               save_ranking: bool = False, model_name: str = "", progress: bool = True,
               merge: bool = True, world: World | None = None) -> dict[str, Any] | None:
    """Mine negatives for this shard's queries; merge when the run is complete. Returns the report once merged.

    With a distributed `world` (torchrun; shard = rank) the ranks encode the pool and every query together, each
    its share, and all get the whole table; independent shards each encode the pool and their own queries.
    """
    if not 0 <= shard_index < num_shards:
        raise ConfigError(f"--shard-index {shard_index} is outside 0..{num_shards - 1}")
    out = Path(out)
    shard_dir = out / SHARDS_DIR
    shard_dir.mkdir(parents=True, exist_ok=True)
    rows = list(range(shard_index, len(source.examples), num_shards))
    examples = [source.examples[row] for row in rows]
    queries = [example.query for example in examples]
    targets = [example.positives[0] for example in examples]
    together = source.examples if world is not None and world.distributed else examples
    items = [*source.pool_items, *(e.query for e in together), *(e.positives[0] for e in together)]
    cache = EmbeddingCache(cache_dir, encoder.model_id) if cache_dir is not None else None
    try:
        table, stats = encode_distinct(encoder, items, batch_size=batch_size, cache=cache, progress=progress,
                                       desc=f"mining shard {shard_index}: encoding", world=world, share=True,
                                       exchange_dir=shard_dir / ".encode-parts")
    finally:
        if cache is not None:
            cache.close()
    pool = table.lookup(source.pool_keys)
    query_vectors = table.lookup([item.content_key() for item in queries])
    target_vectors = table.lookup([item.content_key() for item in targets])
    positive_scores = np.einsum("qd,qd->q", query_vectors, target_vectors) if rows else np.zeros(0)
    top = min(options.top, len(pool))
    scores, ranked = exact_topk(query_vectors, pool, top) if rows else (np.zeros((0, top)), np.zeros((0, top), int))

    stem = shard_stem(shard_index, num_shards)
    with open(shard_dir / f"{stem}.jsonl", "w", encoding="utf-8") as sink:
        for q, (row, example) in enumerate(tqdm(list(zip(rows, examples)), desc="selecting negatives",
                                                disable=not progress, leave=False)):
            query_id = source.query_ids[row]
            selection = select_negatives(
                ranked[q], scores[q], pool_keys=source.pool_keys, positive_indices=source.positive_rows(example),
                positive_keys={item.content_key() for item in example.positives},
                positive_score=float(positive_scores[q]), options=options, query_key=query_id)
            record: dict[str, Any] = {
                "row": row, "query_id": query_id,
                "negative_ids": [source.pool_ids[i] for i in selection.indices],
                "scores": [round(s, 6) for s in selection.scores], "ranks": selection.ranks,
                "positive_score": round(float(positive_scores[q]), 6),
                "eligible": selection.eligible, "removed": dict(selection.removed)}
            if save_ranking:
                record["top_ids"] = [source.pool_ids[int(i)] for i in ranked[q] if i >= 0]
                record["top_scores"] = [round(float(s), 6) for s, i in zip(scores[q], ranked[q]) if i >= 0]
            if not source.writes_ids:
                record["example"] = example_row(example, [source.pool_items[i] for i in selection.indices])
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
    header = {"signature": run_signature(source, options, model_name, num_shards), "shard_index": shard_index,
              "num_shards": num_shards, "model": model_name, "model_id": encoder.model_id, "inputs": source.inputs,
              "options": options.to_dict(), "num_queries_total": len(source.examples), "num_queries": len(rows),
              "pool_size": len(pool), "retrieved_per_query": top, "bad_rows_skipped": source.report.skipped,
              "encoding": {"distinct": stats.distinct, "encoded": stats.encoded, "from_cache": stats.from_cache,
                           "seconds": round(stats.seconds, 2)}}
    write_atomic(shard_dir / f"{stem}.json", json.dumps(header, indent=2) + "\n")
    log.info("mined shard %d of %d: %d queries", shard_index, num_shards, len(rows))
    if merge and not missing_shards(shard_dir, header):
        return merge_shards(out, header["signature"])
    if merge:
        log.info("waiting for shard(s) %s; the last one to finish merges (or run `uniembed mine --merge --out %s`)",
                 missing_shards(shard_dir, header), out)
    return None


def missing_shards(shard_dir: Path, header: dict[str, Any]) -> list[int]:
    headers = {h["shard_index"]: h for h in _headers(shard_dir) if h["signature"] == header["signature"]}
    return [i for i in range(header["num_shards"]) if i not in headers]


def _headers(shard_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(shard_dir.glob("shard-*-of-*.json"))]


def merge_shards(out: str | os.PathLike, signature: str | None = None) -> dict[str, Any]:
    """Combine the complete shards of one run in OUT/shards into the outputs and the report.

    `signature` picks the run when the folder also holds shards of an earlier run (a mining shard passes its own).
    """
    out = Path(out)
    shard_dir = out / SHARDS_DIR
    headers = _headers(shard_dir) if shard_dir.is_dir() else []
    if signature is not None:
        stale = [h for h in headers if h["signature"] != signature]
        if stale:
            log.warning("ignoring %d shard file(s) of an earlier mining run in %s", len(stale), shard_dir)
        headers = [h for h in headers if h["signature"] == signature]
    if not headers:
        raise InputError("no finished mining shards", path=shard_dir, fix="run `uniembed mine` for every shard first")
    signatures = {h["signature"] for h in headers}
    if len(signatures) > 1:
        raise InputError(f"the folder holds shards of {len(signatures)} different mining runs "
                         f"({', '.join(sorted({shard_stem(h['shard_index'], h['num_shards']) for h in headers}))})",
                         path=shard_dir, fix="delete the shard files of the stale run, or mine into a new --out")
    first = headers[0]
    missing = missing_shards(shard_dir, first)
    if missing:
        raise InputError(f"shard(s) {missing} of {first['num_shards']} have not finished", path=shard_dir,
                         fix="run `uniembed mine` with --shard-index for each, then --merge")
    records = []
    for header in sorted(headers, key=lambda h: h["shard_index"]):
        path = shard_dir / f"{shard_stem(header['shard_index'], header['num_shards'])}.jsonl"
        records.extend(record for _, record in iter_json_lines(path))
    records.sort(key=lambda record: record["row"])
    inputs = first["inputs"]
    _write_negatives(out / "negatives.jsonl", records)
    if inputs["format"] == "corpus-ids":
        data_path = out / "queries.jsonl"
        tmp = out / f".queries-{os.getpid()}.jsonl"
        rewrite_negative_ids(inputs["queries"], tmp, {r["query_id"]: r["negative_ids"] for r in records})
        os.replace(tmp, data_path)
    else:
        data_path = out / "train.jsonl"
        write_atomic(data_path, "".join(json.dumps(r["example"], ensure_ascii=False) + "\n" for r in records))
    write_atomic(out / "mixture.yaml", mixture_yaml(inputs, data_path))
    report = build_report(records, headers)
    report["outputs"] = {"data": str(data_path), "negatives": str(out / "negatives.jsonl"),
                         "mixture": str(out / "mixture.yaml")}
    write_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def build_report(records: list[dict[str, Any]], headers: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over all queries: candidates retrieved, removed per filter, kept, and the shortfall."""
    first = headers[0]
    asked = first["options"]["num_negatives"]
    removed = Counter()
    for record in records:
        removed.update(record["removed"])
    kept = [len(record["negative_ids"]) for record in records]
    short = [record["query_id"] for record, count in zip(records, kept) if count < asked]
    negative_scores = [s for record in records for s in record["scores"]]
    return {
        "model": first["model"], "model_id": first["model_id"], "inputs": first["inputs"], "options": first["options"],
        "shards": first["num_shards"], "queries": len(records), "pool_size": first["pool_size"],
        "bad_rows_skipped": first["bad_rows_skipped"],
        "candidates_retrieved": sum(r["eligible"] + sum(r["removed"].values()) for r in records),
        "removed": {name: int(removed.get(name, 0)) for name in FILTERS},
        "eligible": sum(record["eligible"] for record in records),
        "eligible_not_used": sum(record["eligible"] - len(record["negative_ids"]) for record in records),
        "negatives_written": sum(kept),
        "negatives_asked_per_query": asked,
        "queries_short": len(short),
        "queries_without_negatives": sum(1 for count in kept if count == 0),
        "short_query_ids": short[:SHORT_IDS_LISTED],
        "mean_positive_score": _mean([record["positive_score"] for record in records]),
        "mean_negative_score": _mean(negative_scores),
        "encoding_seconds": round(sum(h["encoding"]["seconds"] for h in headers), 2),
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as a short table for the terminal."""
    options = report["options"]
    start, end = options["rank_range"]
    margins = ", ".join(f"{name.replace('_', ' ')} {options[name]}" for name in ("absolute_margin", "relative_margin",
                                                                                "max_score") if options[name] is not None)
    lines = [f"mined {report['queries']} queries over a pool of {report['pool_size']} in {report['shards']} shard(s): "
             f"top {options['top']}, ranks {start}:{end}, {options['num_negatives']} negatives ({options['sampling']})"
             + (f", {margins}" if margins else ""),
             f"  candidates retrieved   {report['candidates_retrieved']:>10d}"]
    for name, count in report["removed"].items():
        lines.append(f"  removed: {name:<18s}{count:>8d}")
    lines += [f"  eligible               {report['eligible']:>10d}",
              f"  negatives written      {report['negatives_written']:>10d}",
              f"  queries short of {report['negatives_asked_per_query']:<5d} {report['queries_short']:>10d}"
              f"  ({report['queries_without_negatives']} with none; never refilled)"]
    if report["short_query_ids"]:
        lines.append(f"  e.g. {', '.join(report['short_query_ids'][:5])}")
    lines.append(f"  mean score: positive {report['mean_positive_score']}, negative {report['mean_negative_score']}")
    lines.append(f"  data: {report['outputs']['data']}\n  mixture: {report['outputs']['mixture']}")
    return "\n".join(lines)


def mixture_yaml(inputs: dict[str, Any], data_path: Path) -> str:
    """A one-source training mixture for the mined data (`uniembed train` reads it)."""
    if inputs["format"] == "corpus-ids":
        root = inputs["media_root"] or str(Path(inputs["queries"]).parent)
        if not inputs["media_root"] and Path(inputs["corpus"]).parent != Path(root):
            log.warning("queries and corpus live in different folders; mixture.yaml sets media_root to the queries' "
                        "folder (%s), so corpus media must resolve there too", root)
        entry = {"name": "mined", "format": "corpus-ids", "path": str(data_path.resolve()), "corpus": inputs["corpus"],
                 "media_root": root}
    else:
        entry = {"name": "mined", "format": "jsonl", "path": str(data_path.resolve())}
    return "sources:\n  - " + json.dumps(entry) + "\n"


def _write_negatives(path: Path, records: list[dict[str, Any]]) -> None:
    keys = ("query_id", "negative_ids", "scores", "ranks", "positive_score", "top_ids", "top_scores")
    write_atomic(path, "".join(json.dumps({k: r[k] for k in keys if k in r}) + "\n" for r in records))


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 6) if values else None
