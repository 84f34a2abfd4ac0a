"""Mining inside a recipe: a stage with `mine:` trains on negatives mined by the model it starts from.

U-MARVEL's stage 2 retrieves each training query's top 100 with the stage-1 model and keeps the first
non-positives as hard negatives. `uniembed mine` does that as a separate command over files; a stage's
`mine:` block does the same over the stage's mixture, source by source (each source's distinct positives
and given negatives are its pool), so a recipe runs retrieve -> mine -> train without a manual step. The
selection is `select_negatives` with the same options; the mined rows are cached in the run directory so
a resumed stage trains on exactly the negatives it started with.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from ..data.examples import TrainingExample
from ..data.mixture import Mixture
from ..errors import reject_unknown_fields
from ..inputs import Item
from ..encoding import Encoder, encode_distinct
from ..index.faiss_index import exact_topk
from .run import write_atomic
from .selection import MiningOptions, select_negatives
from .sources import targets_pool

logger = logging.getLogger("uniembed.train")


def mining_options(spec: dict[str, Any], where: str) -> MiningOptions:
    """A recipe's `mine:` mapping as MiningOptions, with errors that name the recipe field."""
    reject_unknown_fields(MiningOptions, spec, "option(s) of `mine`", where)
    return MiningOptions.from_dict(spec)


def mine_examples(encoder: Encoder, examples: Sequence[TrainingExample], pool: Sequence[Item], options: MiningOptions,
                  batch_size: int = 32, progress: bool = True, desc: str = "mining") -> tuple[list[list[int]], Counter]:
    """Each example's mined negatives as indices into `pool` (its source's targets), and what each filter removed."""
    queries = [example.query for example in examples]
    table, _ = encode_distinct(encoder, [*pool, *queries], batch_size=batch_size, progress=progress, desc=desc)
    pool_keys = [item.content_key() for item in pool]
    pool_vectors = table.lookup(pool_keys)
    query_vectors = table.lookup([item.content_key() for item in queries])
    row_of = {key: row for row, key in enumerate(pool_keys)}
    scores, ranked = exact_topk(query_vectors, pool_vectors, min(options.top, len(pool)))
    chosen, removed = [], Counter()
    for q, example in enumerate(examples):
        positive_keys = {item.content_key() for item in example.positives}
        positive_rows = {row_of[key] for key in positive_keys}
        positive_score = float(query_vectors[q] @ pool_vectors[row_of[example.positives[0].content_key()]])
        selection = select_negatives(ranked[q], scores[q], pool_keys=pool_keys, positive_indices=positive_rows,
                                     positive_keys=positive_keys, positive_score=positive_score, options=options,
                                     query_key=f"row{q}")
        chosen.append(selection.indices)
        removed.update(selection.removed)
    return chosen, removed


def mine_mixture(encoder: Encoder, mixture: Mixture, options: MiningOptions, cache_dir: Path, *, is_main: bool,
                 barrier: Callable[[], None], progress: bool = True) -> Mixture:
    """`mixture` with every example's negatives replaced by mined ones (computed once, on the main process)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    mined_sources = {}
    for name, source in mixture.sources.items():
        cache = cache_dir / f"{name}.json"
        signature = _signature(source.examples, options)
        _, pool = targets_pool(source.examples)
        saved = _read_cache(cache, signature)
        if is_main and saved is None:
            indices, removed = mine_examples(encoder, source.examples, pool, options, progress=progress,
                                             desc=f"mining {name}")
            short = sum(len(found) < options.num_negatives for found in indices)
            saved = {"signature": signature, "options": options.to_dict(), "pool_size": len(pool),
                     "removed": dict(removed), "queries_with_fewer_negatives": short, "negatives": indices}
            write_atomic(cache, json.dumps(saved) + "\n")
            logger.info("mined source '%s': %d queries, pool %d, removed %s, %d with fewer than %d negatives",
                        name, len(indices), len(pool), dict(removed), short, options.num_negatives)
        barrier()
        if saved is None:  # another rank mined it
            saved = json.loads(cache.read_text())
        examples = [dataclasses.replace(example, negatives=[pool[i] for i in found])
                    for example, found in zip(source.examples, saved["negatives"])]
        mined_sources[name] = dataclasses.replace(source, examples=examples)
    return Mixture(mined_sources)


def _signature(examples: Sequence[TrainingExample], options: MiningOptions) -> str:
    digest = hashlib.sha256(json.dumps(options.to_dict(), sort_keys=True).encode())
    for example in examples:
        digest.update(example.query.content_key().encode())
        digest.update(example.positives[0].content_key().encode())
    return digest.hexdigest()[:16]


def _read_cache(cache: Path, signature: str) -> dict[str, Any] | None:
    """The cached mining of this source with these options, or None (missing, unreadable or stale)."""
    try:
        saved = json.loads(cache.read_text())
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None
    return saved if saved.get("signature") == signature else None
