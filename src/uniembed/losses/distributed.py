"""Cross-device negatives: gather with gradient, and the local-loss form of the contrastive objective.

Every rank embeds its own slice of the global batch. The candidates (and, for the symmetric term, the queries)
of all ranks are gathered so each query sees the whole global batch as negatives, and each rank computes the
loss of its own query rows only. The scaling below makes the gradients, after DDP averages them over ranks,
equal those of one process computing the whole batch; tests/dist/losses_worker.py proves it with real processes.
Everything here also works without `torch.distributed` initialised (then it is the single-process loss).
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.distributed as dist
from torch import Tensor

from ..errors import InputError
from .contrastive import PLAIN, NegativeFilters, TemperatureLike, contrastive_loss_per_query


def rank_and_world(group=None) -> tuple[int, int]:
    """(rank, world size) of this process in `group`; (0, 1) when torch.distributed is not initialised."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def gather_sizes(count: int, group=None, device=None) -> list[int]:
    """The leading size every rank holds (ranks may hold different numbers of rows)."""
    _, world = rank_and_world(group)
    if world == 1:
        return [count]
    local = torch.tensor([count], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(local) for _ in range(world)]
    dist.all_gather(sizes, local, group=group)
    return [int(size) for size in sizes]


def gather_no_grad(tensor: Tensor, group=None) -> Tensor:
    """Concatenate every rank's `tensor` along dim 0 (rank order), without gradient: for int metadata."""
    _, world = rank_and_world(group)
    if world == 1:
        return tensor
    return _all_gather_cat(tensor.detach(), gather_sizes(tensor.shape[0], group, tensor.device), group)


def gather_with_grad(tensor: Tensor, group=None) -> Tensor:
    """Concatenate every rank's `tensor` along dim 0 (rank order), keeping this rank's slice differentiable.

    The backward pass sums the gradient that every rank computed for each slice and hands each rank the sum
    for its own slice, so a row's embedding receives the gradient of every rank's loss that used it.
    """
    _, world = rank_and_world(group)
    if world == 1:
        return tensor
    return _GatherWithGrad.apply(tensor, group)


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: Tensor, group) -> Tensor:
        rank, _ = rank_and_world(group)
        sizes = gather_sizes(tensor.shape[0], group, tensor.device)
        ctx.group, ctx.start, ctx.stop = group, sum(sizes[:rank]), sum(sizes[: rank + 1])
        return _all_gather_cat(tensor, sizes, group)

    @staticmethod
    def backward(ctx, grad: Tensor):
        # all_reduce + slice rather than reduce_scatter: gloo (CPU) has no reduce_scatter.
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad[ctx.start : ctx.stop], None


def _all_gather_cat(tensor: Tensor, sizes: list[int], group) -> Tensor:
    """all_gather for slices of different lengths: pad to the longest, gather, cut the padding off."""
    longest = max(sizes)
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous(), group=group)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)], dim=0)


def local_contrastive_loss(
    query: Tensor,
    candidates: Tensor,
    positive: Tensor | None = None,
    *,
    temperature: TemperatureLike,
    filters: NegativeFilters = PLAIN,
    target_modality: Tensor | None = None,
    candidate_modality: Tensor | None = None,
    group=None,
) -> Tensor:
    """`contrastive_loss` over the global batch, computed for this rank's queries only.

    All arguments are this rank's: `query` B_r x D, `candidates` N_r x D (its positives first, then its mined
    negatives), `positive` indexing this rank's candidates (default arange(B_r)), `target_modality` (B_r,),
    `candidate_modality` (N_r,), `temperature` a float, 0-d or (B_r,) tensor. Candidates and their modalities
    are gathered from all ranks (queries too when `filters.symmetric`), so every query's negatives come from the
    global batch. Backpropagate the result on every rank; once DDP has averaged the gradients over ranks they
    equal the gradients of `contrastive_loss` over the whole global batch in one process. Parameters that DDP
    does not manage (e.g. a learnable temperature owned by the loss) need `all_reduce_gradients`.
    The value, averaged over ranks, is the global loss. Local batch sizes may differ between ranks.
    """
    rank, world = rank_and_world(group)
    num_local = query.shape[0]
    query_sizes = gather_sizes(num_local, group, query.device)
    candidate_sizes = gather_sizes(candidates.shape[0], group, candidates.device)
    if positive is None:
        if candidates.shape[0] < num_local:
            raise InputError(
                f"rank {rank} has {num_local} queries but only {candidates.shape[0]} candidates",
                fix="put each query's positive first in this rank's candidates, or pass positive=",
            )
        positive = torch.arange(num_local, device=query.device)
    positive = torch.as_tensor(positive, device=query.device)
    if positive.numel() and (int(positive.min()) < 0 or int(positive.max()) >= candidates.shape[0]):
        raise InputError(
            f"rank {rank}: positive indices must point into this rank's {candidates.shape[0]} candidates",
            fix="index the local candidates; the offset into the gathered candidates is added here",
        )
    per_query = contrastive_loss_per_query(
        query,
        gather_with_grad(candidates, group),
        positive + sum(candidate_sizes[:rank]),
        temperature=temperature,
        filters=filters,
        target_modality=target_modality,
        candidate_modality=None if candidate_modality is None else gather_no_grad(
            torch.as_tensor(candidate_modality, device=candidates.device), group
        ),
        all_queries=gather_with_grad(query, group) if filters.symmetric else None,
        query_offset=sum(query_sizes[:rank]),
    )
    # The gather's backward already sums every rank's gradient into each slice, and DDP then divides by the
    # world size: so sum the local rows over the global batch size and multiply back by the world size.
    return per_query.sum() * (world / sum(query_sizes))


def all_reduce_gradients(parameters: Iterable[Tensor], group=None) -> None:
    """Average `.grad` over ranks, as DDP does, for parameters outside the DDP model (e.g. a temperature)."""
    _, world = rank_and_world(group)
    if world == 1:
        return
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM, group=group)
        parameter.grad.div_(world)
