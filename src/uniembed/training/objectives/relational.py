"""`loss.kind: relational`: relational distillation from a text teacher (UniME stage 1, methods.md §3).

Text-only: each example's query and positive are embedded by the model and by a cached sentence-transformers
teacher; the loss matches the model's query-candidate similarity distribution to the teacher's. Under torchrun
rank 0 embeds the texts and writes the cache; the other ranks read it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ...errors import ConfigError
from ...losses import relational_distillation_loss
from ..teacher import CachedTextTeacher
from .base import EmbeddingLossOptions, EmbeddingObjective

if TYPE_CHECKING:  # pragma: no cover
    from ...data.sampler import SampledBatch


@dataclass
class RelationalOptions(EmbeddingLossOptions):
    kind: str = "relational"
    teacher: str = "minilm"  # "minilm" or a sentence-transformers directory
    distill_temperature: float = 0.02


class RelationalObjective(EmbeddingObjective):
    """Queries and positives only (no appended negatives); the teacher embeds every distinct text once."""

    options_class = RelationalOptions

    def start(self) -> None:
        texts = []
        for source in self.runner.mixture.sources.values():
            for example in source.examples:
                if not example.query.text or not example.positives[0].text or example.query.modality != 1:
                    raise ConfigError(f"relational distillation is text-only; source '{source.name}' has a "
                                      f"non-text example ({example.query.describe()})")
                texts += [example.query.text, example.positives[0].text]
        ctx = self.runner.ctx
        if ctx.is_main:  # one rank embeds the texts and writes the cache; the others read it after the barrier
            self.teacher = CachedTextTeacher(self.options.teacher, texts, self.runner.run_dir / "cache")
        ctx.barrier()
        if not ctx.is_main:
            self.teacher = CachedTextTeacher(self.options.teacher, texts, self.runner.run_dir / "cache")
        super().start()

    def loss(self, queries: torch.Tensor, candidates: torch.Tensor, batch: "SampledBatch",
             candidate_modality: torch.Tensor, target_modality: torch.Tensor) -> torch.Tensor:
        texts_q = [example.query.text for example in batch.examples]
        texts_c = [example.positives[0].text for example in batch.examples]
        return relational_distillation_loss(queries, candidates, self.teacher.embed(texts_q).to(queries.device),
                                            self.teacher.embed(texts_c).to(queries.device),
                                            self.options.distill_temperature)
