"""Late-interaction contrastive loss: InfoNCE over MaxSim scores (ColBERT/ColPali training, docs/methods.md §2).

Query i's positive is candidate i; candidates past the Q queries' positives are appended hard negatives, shared
by every query like the in-batch ones. colpali-engine's `ColbertLoss` is this loss, with the MaxSim score divided
by the query's token count and a temperature of 0.02 (illuin-tech/colpali@9be8f19
colpali_engine/loss/late_interaction_losses.py:123-124 `temperature: float = 0.02, normalize_scores: bool = True`,
152-156 the division by the query lengths, 164 `ce_loss(scores / self.temperature, pos_idx)`).

Scores come from `maxsim.maxsim`, the one MaxSim implementation. Token tensors are padded (N x L x D) with
masked positions all zero, as the late-interaction head writes them, so under GradCache each chunk's tokens
(padded to one length for the step) are one plain tensor and `token_mask` recovers which rows are real.
Across ranks, `local_late_interaction_loss` gathers every rank's document tokens (padded to the longest token
length of any rank) with gradient, so each rank scores its own queries against the global batch's documents, as
`distributed.local_contrastive_loss` does for single vectors.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import gather_sizes, gather_with_grad, rank_and_world
from .maxsim import maxsim


def token_mask(tokens: torch.Tensor) -> torch.Tensor:
    """The real-token mask (N x L bool) of a padded N x L x D token tensor whose masked rows are zero (the
    late-interaction head's output: a real token has norm 1)."""
    return tokens.ne(0).any(dim=-1)


def late_interaction_scores(query_tokens: torch.Tensor, query_mask: torch.Tensor, doc_tokens: torch.Tensor,
                            doc_mask: torch.Tensor, normalize_scores: bool = True) -> torch.Tensor:
    """Q x C MaxSim scores, divided by each query's real-token count with `normalize_scores` (colpali's
    `normalize_scores`: a score in [-1, 1] whatever the query's length)."""
    scores = maxsim(query_tokens, query_mask, doc_tokens, doc_mask)
    if normalize_scores:
        scores = scores / query_mask.sum(dim=-1, keepdim=True).clamp(min=1).to(scores.dtype)
    return scores


def _per_query_loss(query_tokens: torch.Tensor, doc_tokens: torch.Tensor, targets: torch.Tensor,
                    temperature: float | torch.Tensor, query_mask: torch.Tensor | None, doc_mask: torch.Tensor | None,
                    normalize_scores: bool) -> torch.Tensor:
    """Cross-entropy of each query's MaxSim scores over the candidates against its `targets` column (Q,)."""
    query_mask = token_mask(query_tokens) if query_mask is None else query_mask
    doc_mask = token_mask(doc_tokens) if doc_mask is None else doc_mask
    scores = late_interaction_scores(query_tokens, query_mask, doc_tokens, doc_mask, normalize_scores)
    scores = scores.to(torch.promote_types(scores.dtype, torch.float32))  # bf16 tokens: float32 logits
    if torch.is_tensor(temperature) and temperature.dim() == 1:  # one per query (per-task temperature)
        temperature = temperature[:, None]
    return F.cross_entropy(scores / temperature, targets, reduction="none")


def late_interaction_loss(query_tokens: torch.Tensor, doc_tokens: torch.Tensor, temperature: float | torch.Tensor = 0.02,
                          query_mask: torch.Tensor | None = None, doc_mask: torch.Tensor | None = None,
                          normalize_scores: bool = True) -> torch.Tensor:
    """InfoNCE over MaxSim: mean over queries of cross-entropy(scores_i / temperature, target i).

    query_tokens Q x Lq x D; doc_tokens C x Ld x D with C >= Q: the Q positives, then hard negatives.
    `temperature` is a number, a 0-d tensor or one value per query (Q,). Masks default to `token_mask` (zero
    rows are padding)."""
    queries, candidates = query_tokens.shape[0], doc_tokens.shape[0]
    if candidates < queries:
        raise ValueError(f"late_interaction_loss needs each of the {queries} queries' positive among the candidates, "
                         f"got {candidates} candidates")
    targets = torch.arange(queries, device=query_tokens.device)
    return _per_query_loss(query_tokens, doc_tokens, targets, temperature, query_mask, doc_mask,
                           normalize_scores).mean()


def local_late_interaction_loss(query_tokens: torch.Tensor, doc_tokens: torch.Tensor,
                                temperature: float | torch.Tensor = 0.02, normalize_scores: bool = True,
                                group=None) -> torch.Tensor:
    """`late_interaction_loss` over the global batch, computed for this rank's queries only.

    This rank's query_tokens Q_r x Lq x D and doc_tokens C_r x Ld x D (its Q_r positives first, then its hard
    negatives; padding rows zero, as `token_mask` reads them; token lengths may differ between ranks). Every
    rank's documents are padded to the longest Ld of any rank and gathered with gradient, so each query's
    negatives are the whole global batch's documents. Backpropagate on every rank: once DDP has averaged the
    gradients they equal `late_interaction_loss` over the whole batch in one process (the same scaling as
    `local_contrastive_loss`); the value averaged over ranks is the global loss."""
    rank, world = rank_and_world(group)
    if world == 1:
        return late_interaction_loss(query_tokens, doc_tokens, temperature, normalize_scores=normalize_scores)
    queries, candidates = query_tokens.shape[0], doc_tokens.shape[0]
    if candidates < queries:
        raise ValueError(f"local_late_interaction_loss: rank {rank} has {queries} queries but only {candidates} "
                         "candidates; put each query's positive first in this rank's documents")
    longest = max(gather_sizes(doc_tokens.shape[1], group, doc_tokens.device))
    padded = F.pad(doc_tokens, (0, 0, 0, longest - doc_tokens.shape[1]))  # zero rows: padding
    query_sizes = gather_sizes(queries, group, query_tokens.device)
    candidate_sizes = gather_sizes(candidates, group, doc_tokens.device)
    targets = torch.arange(queries, device=query_tokens.device) + sum(candidate_sizes[:rank])
    per_query = _per_query_loss(query_tokens, gather_with_grad(padded, group), targets, temperature, None, None,
                                normalize_scores)
    # the gather's backward sums every rank's gradient into each slice and DDP divides by the world size
    return per_query.sum() * (world / sum(query_sizes))
