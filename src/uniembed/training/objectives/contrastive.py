"""`loss.kind: contrastive`: InfoNCE over the global batch, each recipe's difference an option (methods.md §2).

Every rank embeds its slice of the global batch (queries, positives, then each example's first `num_negatives`
mined negatives); candidates are gathered by `local_contrastive_loss`, and GradCache chunks the forward pass
when the stage sets `grad_cache_chunk`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ...errors import ConfigError, InputError
from ...losses import NegativeFilters, local_contrastive_loss
from .base import EmbeddingLossOptions, EmbeddingObjective

if TYPE_CHECKING:  # pragma: no cover
    from ...data.sampler import SampledBatch
    from ..recipe import Recipe, StageSpec


@dataclass
class ContrastiveOptions(EmbeddingLossOptions):
    """The contrastive head's options: `NegativeFilters`' four, the modality mask and appended negatives."""

    kind: str = "contrastive"
    symmetric: bool = False
    modality_mask: bool = False  # drop candidates of another modality than the query's target (UNITE)
    false_negative_margin: float | None = None
    hardness_alpha: float | None = None
    top_k: int | None = None
    num_negatives: int = 1  # hard negatives per example appended to the candidates (0 = in-batch only)

    def uses_negatives(self) -> bool:
        return self.num_negatives > 0

    def validate(self, recipe: "Recipe", stage: "StageSpec", where: str) -> None:
        super().validate(recipe, stage, where)
        try:
            self.filters()
        except InputError as exc:
            raise ConfigError(f"{where}: loss.{exc}") from exc

    def filters(self) -> NegativeFilters:
        """The negative filters, as the loss functions take them."""
        return NegativeFilters(false_negative_margin=self.false_negative_margin, hardness_alpha=self.hardness_alpha,
                               top_k=self.top_k, symmetric=self.symmetric)


class ContrastiveObjective(EmbeddingObjective):
    """InfoNCE with in-batch, gathered and appended negatives."""

    options_class = ContrastiveOptions

    def items(self, batch: "SampledBatch") -> list:
        depth = self.options.num_negatives
        return super().items(batch) + [negative for example in batch.examples for negative in example.negatives[:depth]]

    def loss(self, queries: torch.Tensor, candidates: torch.Tensor, batch: "SampledBatch",
             candidate_modality: torch.Tensor, target_modality: torch.Tensor) -> torch.Tensor:
        options, temperature = self.options, self.runner.temperature
        tau = temperature(batch.sources) if temperature.tasks else temperature()
        return local_contrastive_loss(
            queries, candidates, temperature=tau, filters=options.filters(),
            target_modality=target_modality if options.modality_mask else None,
            candidate_modality=candidate_modality if options.modality_mask else None)
