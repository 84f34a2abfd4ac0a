"""Training objectives: one contrastive head for all recipes, distillation, cross-device negatives, GradCache,
Matryoshka prefixes.

Pure PyTorch, independent of the model code (docs/methods.md §2-3).
"""
from .contrastive import NegativeFilters, contrastive_loss, contrastive_loss_per_query, negative_mask
from .distillation import listwise_distillation_loss, relational_distillation_loss
from .distributed import (
    all_reduce_gradients,
    gather_no_grad,
    gather_sizes,
    gather_with_grad,
    local_contrastive_loss,
    rank_and_world,
)
from .gradcache import GradCache, RandomState, batch_length, split_batch
from .matryoshka import matryoshka_loss, truncate
from .temperature import Temperature, temperature_parameters

__all__ = [
    "GradCache",
    "NegativeFilters",
    "RandomState",
    "Temperature",
    "all_reduce_gradients",
    "batch_length",
    "contrastive_loss",
    "contrastive_loss_per_query",
    "gather_no_grad",
    "gather_sizes",
    "gather_with_grad",
    "listwise_distillation_loss",
    "local_contrastive_loss",
    "matryoshka_loss",
    "negative_mask",
    "rank_and_world",
    "relational_distillation_loss",
    "split_batch",
    "temperature_parameters",
    "truncate",
]
