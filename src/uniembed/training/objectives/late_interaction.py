"""`loss.kind: late_interaction`: ColBERT/ColPali-style training of a multi-vector model (issue 25.3).

Each example's query, positive and first `num_negatives` mined negatives are embedded token by token by the
late-interaction head (`EmbeddingConfig.multi_vector_dim`), and `losses.local_late_interaction_loss` (InfoNCE
over MaxSim, colpali-engine's `ColbertLoss`) scores every query against every candidate of the global batch: each
rank's candidate tokens are gathered with gradient (padded to the longest of any rank), as the single-vector
contrastive loss gathers its candidates. Under GradCache every chunk's token tensor is padded to the longest item
of the rank's step, so the chunks concatenate; the mask travels in the tensor (padding rows are zero). The stage
runs with `distributed: ddp`, `fsdp` (FSDP2: the head is sharded with the root group, and the saved model gets its
full tensors, `Objective.save_output`) or `deepspeed` (ZeRO-1), and ends with DDP's weights under each
(tests/training/test_training_late_interaction.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ...errors import ConfigError
from ...losses.late_interaction import local_late_interaction_loss
from .base import EmbeddingObjective, LossOptions

if TYPE_CHECKING:  # pragma: no cover
    from ...data.sampler import SampledBatch
    from ..recipe import Recipe, StageSpec


@dataclass
class LateInteractionOptions(LossOptions):
    """`num_negatives` mined negatives per example appended to the candidates (0 = in-batch only);
    `normalize_scores` divides each MaxSim score by the query's token count (colpali-engine's default:
    illuin-tech/colpali@9be8f19 colpali_engine/loss/late_interaction_losses.py:124)."""

    kind: str = "late_interaction"
    num_negatives: int = 1
    normalize_scores: bool = True

    def uses_negatives(self) -> bool:
        return self.num_negatives > 0

    def validate(self, recipe: "Recipe", stage: "StageSpec", where: str) -> None:
        if isinstance(self.num_negatives, bool) or not isinstance(self.num_negatives, int) or self.num_negatives < 0:
            raise ConfigError(f"{where}: loss.num_negatives must be a non-negative integer, got {self.num_negatives!r}")


class LateInteractionObjective(EmbeddingObjective):
    """InfoNCE over MaxSim with in-batch and appended hard negatives, GradCache-chunked."""

    options_class = LateInteractionOptions

    def start(self) -> None:
        embedder = self.runner.embedder
        if embedder.multi_vector_dimension is None:
            raise ConfigError(f"stage '{self.stage.name}': loss.kind late_interaction trains a multi-vector model; "
                              "set embedding.multi_vector_dim (ColQwen2: 128) in the recipe")
        self.matryoshka = None
        self.length = 0
        self.grad_cache = self.runner.grad_cache(self._loss, encoder=self._encode)

    def items(self, batch: "SampledBatch") -> list:
        depth = self.options.num_negatives
        return super().items(batch) + [negative for example in batch.examples for negative in example.negatives[:depth]]

    def step(self, batch: "SampledBatch", prepared: list) -> torch.Tensor:
        embedder = self.runner.embedder
        # one token length for the whole step, so GradCache's chunks (and length groups) concatenate
        self.length = max(len(embedder.backbone.item_tokens(decoded, embedder.config)[0]) for decoded in prepared)
        return super().step(batch, prepared)

    def _encode(self, decoded: list) -> torch.Tensor:
        return self.runner.encode(decoded, multi_vector=True, pad_to=self.length)

    def loss(self, queries: torch.Tensor, candidates: torch.Tensor, batch: "SampledBatch",
             candidate_modality: torch.Tensor, target_modality: torch.Tensor) -> torch.Tensor:
        temperature = self.runner.temperature
        tau = temperature(batch.sources) if temperature.tasks else temperature()
        return local_late_interaction_loss(queries, candidates, temperature=tau,
                                           normalize_scores=self.options.normalize_scores)
