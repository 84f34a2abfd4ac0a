"""`loss.kind: reranker`: pointwise yes/no training of the MLLM as a re-ranker (U-MARVEL after LamRA).

Each example gives two prompts, (query, positive) -> "Yes" and (query, one negative drawn from its first
`negative_depth` negatives) -> "No"; binary cross-entropy on logit_Yes - logit_No. An example without negatives
borrows the next example's positive (the sampler guarantees distinct targets within a batch). The stage writes a
`Reranker` checkpoint, not an embedding model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...inputs import Item
from ...models.embedder import Embedder
from ...models.reranker import Reranker, RerankerConfig
from .base import LossOptions, Objective, accumulate

if TYPE_CHECKING:  # pragma: no cover
    from ...data.sampler import SampledBatch
    from ..recipe import Recipe, StageSpec


@dataclass
class RerankerOptions(LossOptions):
    kind: str = "reranker"
    # the "no" pair's negative is drawn from each example's first `negative_depth` negatives (as
    # `uniembed mine` ranks them: the retriever's top 100)
    negative_depth: int = 100

    makes_embedder = False
    source_batches = True
    ddp_only = True

    def uses_negatives(self) -> bool:
        return True

    def validate(self, recipe: "Recipe", stage: "StageSpec", where: str) -> None:
        if self.negative_depth < 1:
            raise ConfigError(f"{where}: loss.negative_depth must be at least 1")


class RerankerObjective(Objective):
    """Pointwise yes/no training; the pairs are drawn and decoded in the loader thread."""

    options_class = RerankerOptions

    def build_module(self, embedder: Embedder) -> nn.Module:
        self.reranker = Reranker.from_embedder(embedder, RerankerConfig())
        return self.reranker.module

    def pairs(self, batch: "SampledBatch") -> list[tuple[Item, Item, float]]:
        """(query, candidate, label) rows: each example's positive (1) then one drawn negative (0)."""
        rng = np.random.default_rng([self.runner.recipe.seed, self.runner.index, batch.step])
        examples = batch.examples
        rows: list[tuple[Item, Item, float]] = []
        for number, example in enumerate(examples):
            negatives = example.negatives[: self.options.negative_depth]
            if negatives:
                negative = negatives[int(rng.integers(len(negatives)))]
            elif len(examples) > 1:
                negative = examples[(number + 1) % len(examples)].positives[0]
            else:
                raise ConfigError(f"re-ranker stage '{self.stage.name}': an example of source '{batch.source}' has no "
                                  "negatives and its batch no other example; run `uniembed mine` or raise batch_size")
            rows += [(example.query, example.positives[0], 1.0), (example.query, negative, 0.0)]
        return rows

    def prepare_batch(self, batch: "SampledBatch") -> tuple[list[Any], list[float]]:
        rows = self.pairs(batch)
        return [self.reranker.decode_pair(query, candidate, i) for i, (query, candidate, _) in enumerate(rows)], \
            [label for _, _, label in rows]

    def step(self, batch: "SampledBatch", prepared: tuple[list[Any], list[float]]) -> torch.Tensor:
        decoded, labels = prepared

        def loss_of(group: list[int]) -> torch.Tensor:
            with self.runner.autocast():
                logits = self.runner.wrapped(self.reranker.collate([decoded[i] for i in group]))
            target = torch.tensor([labels[i] for i in group], device=logits.device)
            return F.binary_cross_entropy_with_logits(logits[:, 0] - logits[:, 1], target)

        return accumulate(self.runner, len(decoded), self.stage.grad_cache_chunk, loss_of)

    def save_output(self, directory: Path, weights: dict[str, torch.Tensor] | None) -> None:
        self.reranker.save_pretrained(directory)  # LoRA merged into a copy: a plain checkpoint
