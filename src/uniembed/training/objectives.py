"""Stage objectives beyond the contrastive/relational path: the re-ranker and listwise distillation.

The `StageRunner` keeps its built-in contrastive and relational steps; a loss kind listed in `OBJECTIVES`
instead hands four things to its `Objective`: which module trains (`build_module`), what data it trains
on (`prepare`, run once before the sampler is built), one optimisation step's forward and backward
(`step`), and what the stage writes (`save_output`). Checkpoints, resume, logging and the optimizer stay
in the runner, so both objectives resume exactly like every other stage.

- `reranker` (U-MARVEL after LamRA): each example gives two prompts, (query, positive) -> "Yes" and
  (query, one negative drawn from its first `negative_depth` negatives) -> "No"; binary cross-entropy
  on logit_Yes - logit_No. An example without negatives borrows the next example's positive (the
  sampler guarantees distinct targets within a batch). The stage writes a `Reranker` checkpoint.
- `listwise` (U-MARVEL stage 3): for a `fraction` of each source's queries, the previous model ranks
  the source's distinct targets; its top `candidates` are scored by the re-ranker and the teacher score
  (cos_prev + w * P_yes) / 2 is cached on disk. Training minimises KL(softmax(t / tau) || softmax(cos / tau))
  over those K candidates only (no in-batch negatives).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.mixture import Mixture
from ..errors import ConfigError
from ..inputs import Item
from ..losses import listwise_distillation_loss
from ..mining.sources import targets_pool
from ..models.embedder import Embedder
from ..models.reranker import Reranker, RerankerConfig
from .checkpoint import stage_dir
from .recipe import Recipe, StageSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..data.sampler import SampledBatch

logger = logging.getLogger("uniembed.train")


class StageRunner(Protocol):
    """What an objective uses of the stage it runs in (stage.py's `StageRunner`, which imports this module)."""

    recipe: Recipe
    stage: StageSpec
    index: int
    ctx: Any  # parallel.World
    trainer: Any  # its run: `run_dir`
    embedder: Embedder
    wrapped: nn.Module
    temperature: Any  # losses.Temperature

    def _autocast(self) -> contextlib.AbstractContextManager: ...

    def _encode(self, decoded: list) -> torch.Tensor: ...


def is_reranker_stage(stage: StageSpec) -> bool:
    return stage.loss.kind == "reranker"


def previous_embedding_stage(recipe: Recipe, index: int) -> int | None:
    """The latest stage before `index` whose output is an embedding model (re-ranker stages are skipped)."""
    for earlier in range(index - 1, -1, -1):
        if not is_reranker_stage(recipe.stages[earlier]):
            return earlier
    return None


def accumulate(runner: "StageRunner", total: int, chunk: int | None, loss_of: Callable[[list[int]], torch.Tensor]) -> torch.Tensor:
    """Backward a per-row-separable loss over row chunks, each scaled by its share of `total` rows.

    The gradients equal those of one unchunked pass; under DDP all but the last chunk skip the sync.
    """
    rows = list(range(total))
    groups = [rows[start: start + chunk] for start in range(0, total, chunk)] if chunk else [rows]
    value = torch.zeros(())
    for number, group in enumerate(groups):
        last = number == len(groups) - 1
        sync = contextlib.nullcontext() if last or not hasattr(runner.wrapped, "no_sync") else runner.wrapped.no_sync()
        with sync:
            loss = loss_of(group) * (len(group) / total)
            loss.backward()
        value = value + loss.detach().float().cpu()
    return value


class Objective:
    """How one loss kind trains; see the module docstring."""

    def __init__(self, runner: "StageRunner") -> None:
        self.runner = runner
        self.stage = runner.stage

    def build_module(self, embedder: Embedder) -> nn.Module:
        return embedder.module

    def prepare(self, mixture: Mixture) -> Mixture:
        return mixture

    def step(self, batch: "SampledBatch") -> torch.Tensor:
        raise NotImplementedError

    def save_output(self, directory: Path) -> None:
        self.runner.embedder.save_pretrained(directory)


class RerankerObjective(Objective):
    """Pointwise yes/no training of the MLLM as a re-ranker."""

    def build_module(self, embedder: Embedder) -> nn.Module:
        self.reranker = Reranker.from_embedder(embedder, RerankerConfig())
        return self.reranker.module

    def pairs(self, batch: "SampledBatch") -> list[tuple[Item, Item, float]]:
        """(query, candidate, label) rows: each example's positive (1) then one drawn negative (0)."""
        rng = np.random.default_rng([self.runner.recipe.seed, self.runner.index, batch.step])
        examples = batch.examples
        rows: list[tuple[Item, Item, float]] = []
        for number, example in enumerate(examples):
            negatives = example.negatives[: self.stage.loss.negative_depth]
            if negatives:
                negative = negatives[int(rng.integers(len(negatives)))]
            elif len(examples) > 1:
                negative = examples[(number + 1) % len(examples)].positives[0]
            else:
                raise ConfigError(f"re-ranker stage '{self.stage.name}': an example of source '{batch.source}' has no "
                                  "negatives and its batch no other example; run `uniembed mine` or raise batch_size")
            rows += [(example.query, example.positives[0], 1.0), (example.query, negative, 0.0)]
        return rows

    def step(self, batch: "SampledBatch") -> torch.Tensor:
        rows = self.pairs(batch)

        def loss_of(group: list[int]) -> torch.Tensor:
            decoded = [self.reranker.decode_pair(rows[i][0], rows[i][1], i) for i in group]
            with self.runner._autocast():
                logits = self.runner.wrapped(self.reranker.collate(decoded))
            labels = torch.tensor([rows[i][2] for i in group], device=logits.device)
            return F.binary_cross_entropy_with_logits(logits[:, 0] - logits[:, 1], labels)

        return accumulate(self.runner, len(rows), self.stage.grad_cache_chunk, loss_of)

    def save_output(self, directory: Path) -> None:
        self.reranker.save_pretrained(directory)


@dataclasses.dataclass
class TeacherLists:
    """One source's distillation targets: its candidate pool, and per selected example K pool rows + scores."""

    pool: list[Item]
    candidates: np.ndarray  # examples x K, indices into `pool`
    scores: np.ndarray  # examples x K, (cos_prev + w * P_yes) / 2


class ListwiseObjective(Objective):
    """KL distillation of the previous model fused with the re-ranker (U-MARVEL stage 3)."""

    def prepare(self, mixture: Mixture) -> Mixture:
        loss = self.stage.loss
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
        keep = min(count, max(1, math.ceil(self.stage.loss.fraction * count)))
        return np.sort(rng.choice(count, keep, replace=False))

    def reranker_dir(self) -> Path:
        """`loss.reranker` as a stage of this run or a directory; by default the latest re-ranker stage."""
        recipe, name = self.runner.recipe, self.stage.loss.reranker
        stages = recipe.stages[: self.runner.index]
        if name is None:
            index = max(i for i, s in enumerate(stages) if is_reranker_stage(s))
            return stage_dir(self.runner.trainer.run_dir, index, stages[index])
        for index, stage in enumerate(stages):
            if stage.name == name:
                return stage_dir(self.runner.trainer.run_dir, index, stage)
        if not Path(name).is_dir():
            raise ConfigError(f"listwise stage '{self.stage.name}': loss.reranker '{name}' is neither an earlier "
                              "stage of this recipe nor a directory")
        return Path(name)

    def cache_path(self, name: str, examples: Sequence[Any], pool: Sequence[Item], reranker_dir: Path) -> Path:
        loss = self.stage.loss
        info = (reranker_dir / "uniembed.json").read_text() if (reranker_dir / "uniembed.json").exists() else ""
        weights = sorted(str(p.stat().st_size) + p.name for p in reranker_dir.glob("*.safetensors"))
        digest = hashlib.sha256(json.dumps({
            "model": self.runner.embedder.fingerprint(), "reranker": [str(reranker_dir.resolve()), info, weights],
            "queries": [e.query.content_key() for e in examples], "pool": [c.content_key() for c in pool],
            "k": loss.candidates, "w": loss.rerank_weight}).encode()).hexdigest()[:16]
        return self.runner.trainer.run_dir / "cache" / f"listwise-{self.runner.index}-{name}-{digest}.npz"

    def step(self, batch: "SampledBatch") -> torch.Tensor:
        lists = self.lists[batch.source]
        rows = np.asarray(batch.indices)
        temperature = self.runner.temperature
        tau = temperature([batch.source] * len(rows)) if temperature.tasks else temperature()
        tau = tau.reshape(-1, 1) if tau.dim() else tau.reshape(1, 1).expand(len(rows), 1)
        embedder = self.runner.embedder

        def loss_of(group: list[int]) -> torch.Tensor:
            candidates = lists.candidates[rows[group]]
            unique, inverse = np.unique(candidates, return_inverse=True)
            items = [batch.examples[g].query for g in group] + [lists.pool[j] for j in unique]
            embeddings = self.runner._encode([embedder.decode(item, i) for i, item in enumerate(items)])
            queries, pool = embeddings[: len(group)], embeddings[len(group):]
            index = torch.as_tensor(inverse.reshape(candidates.shape), device=pool.device)
            cosine = (F.normalize(queries, dim=-1).unsqueeze(1) * F.normalize(pool, dim=-1)[index]).sum(-1)
            group_tau = tau[group].to(cosine.device)
            teacher = torch.as_tensor(lists.scores[rows[group]], device=cosine.device, dtype=cosine.dtype)
            return listwise_distillation_loss(cosine / group_tau, teacher / group_tau.detach())

        return accumulate(self.runner, len(rows), self.stage.grad_cache_chunk, loss_of)


def teacher_scores(embedder: Embedder, reranker: Reranker, queries: Sequence[Item], pool: Sequence[Item], k: int,
                   weight: float, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Each query's top k of `pool` by the embedder and the fused teacher score (cos + weight * P_yes) / 2."""
    from ..index.faiss_index import exact_topk

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


OBJECTIVES: dict[str, type[Objective]] = {"reranker": RerankerObjective, "listwise": ListwiseObjective}


def objective_for(runner: "StageRunner") -> Objective | None:
    """The objective of the runner's loss kind, or None for the runner's built-in contrastive/relational step."""
    cls = OBJECTIVES.get(runner.stage.loss.kind)
    return cls(runner) if cls is not None else None
