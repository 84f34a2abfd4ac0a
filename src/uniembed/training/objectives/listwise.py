"""`loss.kind: listwise`: KL distillation of the previous model fused with the re-ranker (U-MARVEL stage 3).

For a `fraction` of each source's queries, the previous model ranks the source's distinct targets; its top
`candidates` are scored by the re-ranker and the teacher score (cos_prev + w * P_yes) / 2 is cached on disk.
Training minimises KL(softmax(t / tau) || softmax(cos / tau)) over those K candidates only (no in-batch negatives).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...data.mixture import Mixture
from ...errors import ConfigError
from ...inputs import Item
from ...losses import listwise_distillation_loss
from ...mining.sources import targets_pool
from ...models.embedder import Embedder
from ...models.reranker import Reranker
from .base import LossOptions, Objective, accumulate, row_groups
from .reranker import RerankerOptions

if TYPE_CHECKING:  # pragma: no cover
    from ...data.sampler import SampledBatch
    from ..recipe import Recipe, StageSpec

logger = logging.getLogger("uniembed.train")


@dataclass
class ListwiseOptions(LossOptions):
    """teacher = (cos_prev + rerank_weight * P_yes) / 2 over each query's top `candidates` of the previous model;
    `reranker` = a re-ranker stage's name or a directory (default: the latest re-ranker stage before this one);
    `fraction` of each source's queries train."""

    kind: str = "listwise"
    reranker: str | None = None
    rerank_weight: float = 1.0
    candidates: int = 50
    fraction: float = 0.1

    source_batches = True
    ddp_only = True

    def validate(self, recipe: "Recipe", stage: "StageSpec", where: str) -> None:
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"{where}: loss.fraction must be in (0, 1], got {self.fraction}")
        if self.candidates < 2:
            raise ConfigError(f"{where}: loss.candidates must be at least 2, got {self.candidates}")
        position = recipe.stages.index(stage)
        rerankers = [s.name for s in recipe.stages[:position] if isinstance(s.loss, RerankerOptions)]
        later = [s.name for s in recipe.stages[position + 1:] if isinstance(s.loss, RerankerOptions)]
        if self.reranker is None and not rerankers:
            raise ConfigError(f"{where}: listwise distillation needs a re-ranker: add a stage with loss.kind: reranker "
                              "before it, or set loss.reranker to a re-ranker directory")
        if self.reranker in later:
            raise ConfigError(f"{where}: loss.reranker names stage '{self.reranker}', which runs after this one")


@dataclasses.dataclass
class TeacherLists:
    """One source's distillation targets: its candidate pool, and per selected example K pool rows + scores."""

    pool: list[Item]
    candidates: np.ndarray  # examples x K, indices into `pool`
    scores: np.ndarray  # examples x K, (cos_prev + w * P_yes) / 2


class ListwiseObjective(Objective):
    """KL distillation of the previous model fused with the re-ranker (U-MARVEL stage 3)."""

    options_class = ListwiseOptions

    def prepare(self, mixture: Mixture) -> Mixture:
        loss = self.options
        self.lists: dict[str, TeacherLists] = {}
        selected = {}
        reranker_dir = self.reranker_dir()
        reranker: Reranker | None = None
        for name, source in mixture.sources.items():
            chosen = self.select(name, len(source.examples))
            examples = [source.examples[i] for i in chosen]
            _, pool = targets_pool(source.examples)  # every distinct positive and negative
            cache = self.cache_path(name, examples, pool, reranker_dir)
            if self.runner.ctx.is_main and not cache.exists():
                if reranker is None:
                    reranker = Reranker.from_pretrained(reranker_dir, device=self.runner.ctx.device)
                candidates, scores = teacher_scores(self.runner.embedder, reranker, [e.query for e in examples], pool,
                                                    loss.candidates, loss.rerank_weight)
                write_npz(cache, candidates=candidates, scores=scores)
            self.runner.ctx.barrier()
            with np.load(cache) as saved:
                self.lists[name] = TeacherLists(pool, saved["candidates"], saved["scores"])
            selected[name] = dataclasses.replace(source, examples=examples)
            logger.info("listwise stage '%s': source '%s': %d of %d queries, %d candidates each from a pool of %d",
                        self.stage.name, name, len(examples), len(source.examples), self.lists[name].candidates.shape[1],
                        len(pool))
        del reranker
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return Mixture(selected)

    def select(self, name: str, count: int) -> np.ndarray:
        """The `fraction` of a source's examples that train, drawn once from (seed, stage, source)."""
        rng = np.random.default_rng([self.runner.recipe.seed, self.runner.index, zlib.crc32(name.encode())])
        keep = min(count, max(1, math.ceil(self.options.fraction * count)))
        return np.sort(rng.choice(count, keep, replace=False))

    def reranker_dir(self) -> Path:
        """`loss.reranker` as a stage of this run or a directory; by default the latest re-ranker stage."""
        recipe, name = self.runner.recipe, self.options.reranker
        stages = recipe.stages[: self.runner.index]
        if name is None:
            index = max(i for i, s in enumerate(stages) if isinstance(s.loss, RerankerOptions))
            return self.runner.output_dir(index)
        for index, stage in enumerate(stages):
            if stage.name == name:
                return self.runner.output_dir(index)
        if not Path(name).is_dir():
            raise ConfigError(f"listwise stage '{self.stage.name}': loss.reranker '{name}' is neither an earlier "
                              "stage of this recipe nor a directory")
        return Path(name)

    def cache_path(self, name: str, examples: Sequence[Any], pool: Sequence[Item], reranker_dir: Path) -> Path:
        loss = self.options
        info = (reranker_dir / "uniembed.json").read_text() if (reranker_dir / "uniembed.json").exists() else ""
        weights = sorted(str(p.stat().st_size) + p.name for p in reranker_dir.glob("*.safetensors"))
        digest = hashlib.sha256(json.dumps({
            "model": self.runner.embedder.fingerprint(), "reranker": [str(reranker_dir.resolve()), info, weights],
            "queries": [e.query.content_key() for e in examples], "pool": [c.content_key() for c in pool],
            "k": loss.candidates, "w": loss.rerank_weight}).encode()).hexdigest()[:16]
        return self.runner.run_dir / "cache" / f"listwise-{self.runner.index}-{name}-{digest}.npz"

    def prepare_batch(self, batch: "SampledBatch") -> list[tuple[list[Any], np.ndarray]]:
        """Per row chunk: its queries and its distinct candidates decoded, and each row's candidates among them."""
        lists, rows, embedder = self.lists[batch.source], np.asarray(batch.indices), self.runner.embedder
        chunks = []
        for group in row_groups(len(rows), self.stage.grad_cache_chunk):
            candidates = lists.candidates[rows[group]]
            unique, inverse = np.unique(candidates, return_inverse=True)
            items = [batch.examples[g].query for g in group] + [lists.pool[j] for j in unique]
            chunks.append(([embedder.decode(item, i) for i, item in enumerate(items)], inverse.reshape(candidates.shape)))
        return chunks

    def step(self, batch: "SampledBatch", prepared: list[tuple[list[Any], np.ndarray]]) -> torch.Tensor:
        lists = self.lists[batch.source]
        rows = np.asarray(batch.indices)
        temperature = self.runner.temperature
        tau = temperature([batch.source] * len(rows)) if temperature.tasks else temperature()
        tau = tau.reshape(-1, 1) if tau.dim() else tau.reshape(1, 1).expand(len(rows), 1)
        chunks = iter(prepared)  # in the order of `row_groups`, as `accumulate` walks them

        def loss_of(group: list[int]) -> torch.Tensor:
            decoded, inverse = next(chunks)
            embeddings = self.runner.encode(decoded)
            queries, pool = embeddings[: len(group)], embeddings[len(group):]
            index = torch.as_tensor(inverse, device=pool.device)
            cosine = (F.normalize(queries, dim=-1).unsqueeze(1) * F.normalize(pool, dim=-1)[index]).sum(-1)
            group_tau = tau[group].to(cosine.device)
            teacher = torch.as_tensor(lists.scores[rows[group]], device=cosine.device, dtype=cosine.dtype)
            return listwise_distillation_loss(cosine / group_tau, teacher / group_tau.detach())

        return accumulate(self.runner, len(rows), self.stage.grad_cache_chunk, loss_of)


def teacher_scores(embedder: Embedder, reranker: Reranker, queries: Sequence[Item], pool: Sequence[Item], k: int,
                   weight: float, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Each query's top k of `pool` by the embedder and the fused teacher score (cos + weight * P_yes) / 2."""
    from ...index.faiss_index import exact_topk

    query_vectors = embedder.encode(list(queries), batch_size=batch_size, normalize=True)
    pool_vectors = embedder.encode(list(pool), batch_size=batch_size, normalize=True)
    cosine, candidates = exact_topk(query_vectors, pool_vectors, k)
    pairs = [(query, pool[j]) for query, row in zip(queries, candidates) for j in row]
    p_yes = reranker.score_pairs(pairs, batch_size=batch_size).reshape(candidates.shape)
    return candidates.astype(np.int64), ((cosine + weight * p_yes) / 2).astype(np.float32)


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write atomically, so a run killed mid-write never leaves a truncated cache behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
