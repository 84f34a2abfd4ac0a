"""MaxSim, the late-interaction score of ColBERT/ColPali: for each query token, its best dot product with any
document token, summed over the query's tokens.

Multi-vector embeddings are ragged (each item has its own token count), so they travel as a padded
`tokens` tensor (N x L x D) with a boolean `mask` (N x L, True = a real token). Padded positions are excluded
with `where`, never by multiplying, so garbage (even NaN) in padded rows cannot leak into a score.

The definition is colpali-engine's `BaseVisualRetrieverProcessor.score_multi_vector`
(illuin-tech/colpali, colpali_engine/utils/processing_utils.py: einsum "bnd,csd->bcns", max over the
document's tokens, sum over the query's); here it is written with explicit masks instead of zero padding.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad_tokens(items: Sequence[np.ndarray | torch.Tensor], dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ragged per-item token matrices (n_i x D) into (N x max n_i x D) plus the N x max n_i real-token
    mask. Items with no tokens are allowed (an all-False mask row)."""
    if not items:
        raise ValueError("pad_tokens needs at least one item")
    widths = {int(item.shape[-1]) for item in items}
    if len(widths) != 1:
        raise ValueError(f"pad_tokens got token vectors of different widths {sorted(widths)}")
    length = max(int(item.shape[0]) for item in items)
    tokens = torch.zeros(len(items), max(length, 1), widths.pop(), dtype=dtype, device=device)
    mask = torch.zeros(len(items), max(length, 1), dtype=torch.bool, device=device)
    for row, item in enumerate(items):
        count = int(item.shape[0])
        if count:
            tokens[row, :count] = torch.as_tensor(np.asarray(item) if not torch.is_tensor(item) else item,
                                                  dtype=dtype, device=device)
            mask[row, :count] = True
    return tokens, mask


def maxsim(query_tokens: torch.Tensor, query_mask: torch.Tensor, doc_tokens: torch.Tensor,
           doc_mask: torch.Tensor) -> torch.Tensor:
    """Q x C late-interaction scores: `sum_i max_j <q_i, d_j>` over real query tokens i and document tokens j.

    query_tokens Q x Lq x D, query_mask Q x Lq; doc_tokens C x Ld x D, doc_mask C x Ld (True = real token).
    A query token against a document with no real token contributes 0; differentiable in both inputs.
    """
    if query_tokens.shape[-1] != doc_tokens.shape[-1]:
        raise ValueError(f"maxsim: query tokens have {query_tokens.shape[-1]} dimensions, "
                         f"document tokens {doc_tokens.shape[-1]}")
    similarity = torch.einsum("qid,cjd->qcij", query_tokens, doc_tokens)  # Q x C x Lq x Ld
    lowest = torch.finfo(similarity.dtype).min
    similarity = torch.where(doc_mask[None, :, None, :], similarity, torch.full_like(similarity, lowest))
    best = similarity.amax(dim=-1)  # Q x C x Lq
    best = torch.where(doc_mask.any(dim=-1)[None, :, None], best, torch.zeros_like(best))
    best = torch.where(query_mask[:, None, :], best, torch.zeros_like(best))
    return best.sum(dim=-1)
