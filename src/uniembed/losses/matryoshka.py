"""Matryoshka representation learning: one loss summed over nested prefixes of the embedding.

The semantics are sentence-transformers' `MatryoshkaLoss` (UKPLab/sentence-transformers commit 0226b2fb,
sentence_transformers/losses/MatryoshkaLoss.py: `shrink` L22-30 slices to the first d coordinates and
L2-normalises; `MatryoshkaLoss.forward` adds `weight * loss` per dim; weights default to 1). Here the cut happens
inside the loss function on embeddings already computed, so the same function runs under GradCache (cached
embeddings), gather-with-grad (`local_contrastive_loss` gathers the cut vectors) and DDP/FSDP unchanged.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


def truncate(vectors: torch.Tensor, truncate_dim: int, normalize: bool) -> torch.Tensor:
    """The first `truncate_dim` coordinates of each row (a Matryoshka prefix), re-normalised to unit length
    when `normalize`: a cut unit vector is shorter than 1, and cosine scores assume length 1."""
    if truncate_dim >= vectors.shape[-1]:
        return vectors  # the full width is no cut
    cut = vectors[..., :truncate_dim]
    return F.normalize(cut, dim=-1) if normalize else cut


def matryoshka_loss(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], queries: torch.Tensor,
                    candidates: torch.Tensor, dims: Sequence[int],
                    weights: Sequence[float] | None = None) -> torch.Tensor:
    """`sum_d weights[d] * loss_fn(queries[:, :d], candidates[:, :d])`, each prefix re-normalised.

    `loss_fn` takes (queries, candidates) embeddings and returns a scalar; `weights` default to 1 per dim.
    """
    if not dims:
        raise ValueError("matryoshka_loss needs at least one dimension")
    weights = [1.0] * len(dims) if weights is None else list(weights)
    if len(weights) != len(dims):
        raise ValueError(f"matryoshka_loss got {len(dims)} dims but {len(weights)} weights")
    width = queries.shape[-1]
    if max(dims) > width or min(dims) < 1:
        raise ValueError(f"matryoshka dims {list(dims)} must lie in 1..{width}, the embedding width")
    total = None
    for dim, weight in zip(dims, weights):
        term = weight * loss_fn(truncate(queries, dim, True), truncate(candidates, dim, True))
        total = term if total is None else total + term
    return total
