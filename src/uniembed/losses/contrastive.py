"""The contrastive objective shared by every recipe (docs/methods.md §2).

One InfoNCE head with each recipe's difference as an option: a modality mask (UNITE), a false-negative filter
(UniME, RzenEmbed), top-k hard negatives (UniME), hardness weights (RzenEmbed after LLaVE), a fixed, learnable or
per-query temperature, and a symmetric candidate-to-query term (UNITE stage 1, U-MARVEL). The distributed
"local loss" (`uniembed.losses.distributed`) calls `contrastive_loss_per_query` with gathered candidates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError

TemperatureLike = Union[float, Tensor]


@dataclass(frozen=True)
class NegativeFilters:
    """Which negatives each query keeps and how they weigh: the recipe options of the contrastive head, once.

    `false_negative_margin`: drop candidates with s_ij > s_ip + margin (UniME, RzenEmbed); `top_k`: keep only the
    k most similar remaining negatives (UniME); `hardness_alpha`: weight each remaining negative by
    exp(alpha * s_ij), without gradient (RzenEmbed after LLaVE); `symmetric`: add the candidate-to-query term
    (UNITE stage 1, U-MARVEL). The default filters nothing: plain InfoNCE. The modality mask is not an option
    here: it is data (each candidate's modality), turned on by passing `candidate_modality` to the loss.
    """

    false_negative_margin: float | None = None
    hardness_alpha: float | None = None
    top_k: int | None = None
    symmetric: bool = False

    def __post_init__(self) -> None:
        top_k = self.top_k
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise InputError(f"top_k must be a positive integer, got {top_k!r}", fix="use e.g. top_k=8 or None")
        for name in ("false_negative_margin", "hardness_alpha"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (int, float)):
                raise InputError(f"{name} must be a number, got {type(value).__name__}")


PLAIN = NegativeFilters()  # plain InfoNCE: every other candidate is a negative, all weigh the same


def contrastive_loss(
    query: Tensor,
    candidates: Tensor,
    positive: Tensor | None = None,
    *,
    temperature: TemperatureLike,
    filters: NegativeFilters = PLAIN,
    target_modality: Tensor | None = None,
    candidate_modality: Tensor | None = None,
) -> Tensor:
    """InfoNCE over in-batch and appended negatives, mean over queries.

    `query` is B x D, `candidates` N x D (the B positives first, then any mined negatives); both are
    L2-normalised here. `positive` (B,) indexes each query's positive in `candidates` (default `arange(B)`).
    Negatives of query i are all j != positive[i], then, in this order and only when given: candidates whose
    `candidate_modality` differs from `target_modality[i]` (default: the modality of query i's positive) are
    dropped; candidates with s_ij > s_ip + `filters.false_negative_margin` are dropped; only the `filters.top_k`
    most similar remaining negatives are kept; each remaining negative is weighted by
    exp(`filters.hardness_alpha` * s_ij), a weight that carries no gradient. `temperature` is a float, a 0-d
    tensor (learnable) or a (B,) tensor (one per query). `filters.symmetric` adds the candidate-to-query
    direction over the positives (no masks, no weights) and returns the mean of both directions. bfloat16/float16 inputs are computed in float32 and the loss is
    returned in float32; float64 stays float64.
    """
    return contrastive_loss_per_query(
        query,
        candidates,
        positive,
        temperature=temperature,
        filters=filters,
        target_modality=target_modality,
        candidate_modality=candidate_modality,
    ).mean()


def contrastive_loss_per_query(
    query: Tensor,
    candidates: Tensor,
    positive: Tensor | None = None,
    *,
    temperature: TemperatureLike,
    filters: NegativeFilters = PLAIN,
    target_modality: Tensor | None = None,
    candidate_modality: Tensor | None = None,
    all_queries: Tensor | None = None,
    query_offset: int = 0,
) -> Tensor:
    """The per-query losses (B,) behind `contrastive_loss` (same arguments), without the mean.

    For the distributed local loss, `query` may be a slice of a larger batch: `all_queries` is that whole
    (gathered) batch and `query` is its rows `query_offset : query_offset + B`. Only the symmetric term uses
    them, as the columns of the candidate-to-query softmax; `positive` must then index the gathered candidates.
    """
    _check_embeddings(query, candidates)
    dtype = _compute_dtype(query.dtype)
    q = F.normalize(query.to(dtype), dim=-1)
    c = F.normalize(candidates.to(dtype), dim=-1)
    num_queries, num_candidates = q.shape[0], c.shape[0]
    positive = _positive_indices(positive, num_queries, num_candidates, q.device)
    tau = _temperature_column(temperature, num_queries, dtype, q.device)
    target_modality, candidate_modality = _modalities(
        target_modality, candidate_modality, positive, num_queries, num_candidates
    )
    if not isinstance(filters, NegativeFilters):
        raise TypeError(f"filters must be a NegativeFilters, got {type(filters).__name__}")

    rows = torch.arange(num_queries, device=q.device)
    sim = q @ c.T
    pos_sim = sim[rows, positive]
    keep = negative_mask(
        sim.detach(), positive, filters, target_modality=target_modality, candidate_modality=candidate_modality
    )
    logits = sim / tau
    if filters.hardness_alpha is not None:
        # w_ij * exp(s_ij / tau) == exp(s_ij / tau + log w_ij): the weight joins the log-sum-exp as a constant.
        logits = logits + filters.hardness_alpha * sim.detach()
    pos_logit = pos_sim / tau.squeeze(-1)
    neg_logits = logits.masked_fill(~keep, float("-inf"))
    loss = torch.logsumexp(torch.cat([pos_logit[:, None], neg_logits], dim=1), dim=1) - pos_logit

    if filters.symmetric:
        loss = (loss + _candidate_to_query(q, c, positive, tau, all_queries, query_offset, dtype)) / 2
    return loss


def negative_mask(
    sim: Tensor,
    positive: Tensor,
    filters: NegativeFilters = PLAIN,
    *,
    target_modality: Tensor | None = None,
    candidate_modality: Tensor | None = None,
) -> Tensor:
    """B x N bool mask of the negatives each query keeps, the filters applied in the documented order."""
    num_queries, num_candidates = sim.shape
    rows = torch.arange(num_queries, device=sim.device)
    keep = torch.ones_like(sim, dtype=torch.bool)
    keep[rows, positive] = False
    if candidate_modality is not None:
        keep &= candidate_modality[None, :] == target_modality[:, None]
    if filters.false_negative_margin is not None:
        keep &= sim <= sim[rows, positive][:, None] + filters.false_negative_margin
    if filters.top_k is not None:
        k = min(filters.top_k, num_candidates)
        chosen = sim.masked_fill(~keep, float("-inf")).topk(k, dim=1).indices
        keep &= torch.zeros_like(keep).scatter_(1, chosen, True)
    return keep


def _candidate_to_query(
    q: Tensor,
    c: Tensor,
    positive: Tensor,
    tau: Tensor,
    all_queries: Tensor | None,
    query_offset: int,
    dtype: torch.dtype,
) -> Tensor:
    """Per-row loss of each positive candidate picking its own query among all queries."""
    columns = q if all_queries is None else F.normalize(all_queries.to(dtype), dim=-1)
    num_queries = q.shape[0]
    if all_queries is not None and not 0 <= query_offset <= columns.shape[0] - num_queries:
        raise InputError(
            f"query_offset {query_offset} with {num_queries} local queries does not fit in "
            f"{columns.shape[0]} gathered queries",
            fix="pass the row where this process's queries start in all_queries",
        )
    logits = (c[positive] @ columns.T) / tau
    own = torch.arange(num_queries, device=q.device) + query_offset
    return torch.logsumexp(logits, dim=1) - logits[torch.arange(num_queries, device=q.device), own]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything narrower is computed in float32 so the softmax keeps its precision."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_embeddings(query: Tensor, candidates: Tensor) -> None:
    if query.dim() != 2 or candidates.dim() != 2:
        raise InputError(
            f"query and candidates must be 2-D (batch x dim), got shapes {tuple(query.shape)} and "
            f"{tuple(candidates.shape)}",
            fix="stack one embedding per row",
        )
    if query.shape[1] != candidates.shape[1]:
        raise InputError(
            f"query dimension {query.shape[1]} differs from candidate dimension {candidates.shape[1]}",
            fix="embed queries and candidates with the same model",
        )
    if query.shape[0] == 0 or candidates.shape[0] == 0:
        raise InputError("empty batch: the loss needs at least one query and one candidate")
    if not query.is_floating_point() or not candidates.is_floating_point():
        raise InputError("embeddings must be floating point tensors", fix="pass model outputs, not token ids")


def _positive_indices(positive: Tensor | None, num_queries: int, num_candidates: int, device) -> Tensor:
    if positive is None:
        if num_candidates < num_queries:
            raise InputError(
                f"{num_queries} queries but only {num_candidates} candidates",
                fix="put each query's positive first in candidates, or pass positive= indices",
            )
        return torch.arange(num_queries, device=device)
    positive = torch.as_tensor(positive, device=device)
    if positive.shape != (num_queries,) or positive.is_floating_point() or positive.dtype == torch.bool:
        raise InputError(
            f"positive must be an integer tensor of shape ({num_queries},), got {positive.dtype} "
            f"{tuple(positive.shape)}",
            fix="give one candidate index per query",
        )
    if num_queries and (int(positive.min()) < 0 or int(positive.max()) >= num_candidates):
        bad = int(((positive < 0) | (positive >= num_candidates)).nonzero()[0])
        raise InputError(
            f"positive index {int(positive[bad])} is outside the {num_candidates} candidates",
            position=bad,
            fix="index into candidates (0-based)",
        )
    return positive.long()


def _temperature_column(temperature: TemperatureLike, num_queries: int, dtype, device) -> Tensor:
    """The temperature as a 0-d tensor or a (B, 1) column, so `sim / tau` broadcasts per query."""
    if isinstance(temperature, Tensor):
        if temperature.dim() == 0:
            return temperature.to(dtype)
        if temperature.shape == (num_queries,):
            return temperature.to(dtype)[:, None]
        raise InputError(
            f"temperature must be a float, a 0-d tensor or a ({num_queries},) tensor, got shape "
            f"{tuple(temperature.shape)}",
            fix="pass one temperature per query (e.g. Temperature(tasks=...)(task_names))",
        )
    temperature = float(temperature)
    if not temperature > 0:
        raise InputError(f"temperature must be positive, got {temperature}", fix="use e.g. 0.02")
    return torch.tensor(temperature, dtype=dtype, device=device)


def _modalities(target_modality, candidate_modality, positive, num_queries, num_candidates):
    if candidate_modality is None:
        if target_modality is not None:
            raise InputError(
                "target_modality was given without candidate_modality",
                fix="pass candidate_modality (one bitmask per candidate) to turn on the modality mask",
            )
        return None, None
    candidate_modality = torch.as_tensor(candidate_modality, device=positive.device)
    if candidate_modality.shape != (num_candidates,):
        raise InputError(
            f"candidate_modality must have shape ({num_candidates},), got {tuple(candidate_modality.shape)}",
            fix="give one modality bitmask (text=1, image=2, video=4) per candidate",
        )
    if target_modality is None:
        return candidate_modality[positive], candidate_modality
    target_modality = torch.as_tensor(target_modality, device=positive.device)
    if target_modality.shape != (num_queries,):
        raise InputError(
            f"target_modality must have shape ({num_queries},), got {tuple(target_modality.shape)}",
            fix="give the modality bitmask of each query's positive",
        )
    return target_modality, candidate_modality
