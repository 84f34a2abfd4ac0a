"""How the trained model spans ranks: replicated (DDP, the default) or sharded (FSDP2, `distributed: fsdp`;
DeepSpeed ZeRO-1/2, `distributed: deepspeed`, is in `zero.py`).

FSDP2 (`torch.distributed.fsdp.fully_shard`) shards each language-model layer (see `shard_units`) and, at the
root, everything else, so a rank holds 1/world of the weights, gradients and optimizer state (ZeRO-3 without
DeepSpeed). Checkpoints and stage outputs are written as full tensors by rank 0:
a sharded run resumes on the same number of ranks, and its outputs load anywhere.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import nn

from ..losses.gradcache import batch_length, split_into
from .trainable import is_vision


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def shard_units(module: nn.Module) -> list[nn.Module]:
    """The blocks FSDP shards one by one: the language model's layers (the classes a model lists in
    `_no_split_modules`). Vision blocks stay in the root group: a rank whose share of a batch has no image
    skips the vision tower, and a sharded block there would leave the other ranks waiting in its all-gather."""
    names: set[str] = set()
    for sub in module.modules():
        names.update(getattr(sub, "_no_split_modules", None) or ())
    return [sub for name, sub in module.named_modules() if type(sub).__name__ in names and not is_vision(name)]


def equal_chunk_split(batch: Any, chunk_size: int) -> list:
    """GradCache's split for a sharded model: every rank runs as many chunks as the rank with the most rows
    needs, because each chunk's forward all-gathers the shards (a collective every rank must join)."""
    count = torch.tensor([math.ceil(batch_length(batch) / chunk_size)])
    dist.all_reduce(count, op=dist.ReduceOp.MAX)
    return split_into(batch, int(count))


def wrap_for_training(module: nn.Module, *, strategy: str, world: int, device: torch.device,
                      find_unused_parameters: bool = False, bf16: bool = False) -> nn.Module:
    """The module the step calls: `module` itself on one rank, DDP around it, or `module` sharded in place.
    (`deepspeed`: `module` itself; its engine needs the optimizer, see `training/zero.py`.)"""
    if world == 1 or strategy == "deepspeed":
        return module
    if strategy == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        # bf16 all-gathers and compute, fp32 gradient reduction and master weights (as autocast would keep)
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else MixedPrecisionPolicy()
        for block in shard_units(module):
            fully_shard(block, mp_policy=policy)
        fully_shard(module, mp_policy=policy)
        # A rank whose share has no image leaves the root group's vision tensors (and LLaVA-OneVision's
        # image_newline) without a gradient; FSDP2 would reduce-scatter fewer tensors there than on the other
        # ranks ("Received data size doesn't match expected size"). Zeros stand in, as DDP's
        # find_unused_parameters does; a tensor no rank used gets its gradient back to None before the optimizer
        # steps (`drop_unused_gradients`), so Adam skips it as under DDP.
        module.set_reduce_scatter_unused_params(True)
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None,
                                   find_unused_parameters=find_unused_parameters)


def used_anywhere(used: torch.Tensor) -> list[bool]:
    """One all-reduce of per-parameter flags (a 0/1 tensor, the same parameter order on every rank): True where
    any rank's step gave that parameter a gradient. Every rank then agrees which parameters to skip."""
    flags = used.to(torch.int32)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return [bool(flag) for flag in flags.tolist()]


def drop_unused_gradients(parameters: list[nn.Parameter]) -> None:
    """A sharded (FSDP2) step's gradients as DDP with `find_unused_parameters` leaves them: None for a parameter
    no rank used, so the optimizer skips it (no Adam momentum step, no weight decay). FSDP2 reduce-scatters
    zeros for a tensor a rank did not use (see `wrap_for_training`), so a tensor none used holds zeros on every
    rank; the flags are whether a rank's shard of the summed gradient is non-zero (a used tensor whose gradient
    sums to exactly zero everywhere is skipped too, where DDP would step it)."""
    from torch.distributed.tensor import DTensor

    def local(grad: torch.Tensor) -> torch.Tensor:
        return grad.to_local() if isinstance(grad, DTensor) else grad

    with_grad = [p for p in parameters if p.grad is not None]
    if not with_grad:
        return
    device = local(with_grad[0].grad).device
    flags = torch.stack([local(p.grad).ne(0).any() for p in with_grad]).to(device)
    for parameter, used in zip(with_grad, used_anywhere(flags)):
        if not used:
            parameter.grad = None


# ---- full-tensor state of a sharded model (every rank calls these: they are collectives) ---------------------
def _options(**kwargs: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def full_model_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer as a full CPU tensor on rank 0 (an empty dict on the other ranks)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(module, options=_options(cpu_offload=True))


def load_full_model_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load full tensors (a subset is fine) into a sharded module: each rank keeps its shard."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(module, state, options=_options(strict=False))


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state keyed by parameter name, full tensors on rank 0; `model` owns every optimized parameter."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))


def load_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    # parameters that never had a gradient (e.g. an unused LM head) have no Adam state, saved or live
    set_optimizer_state_dict(model, optimizer, state, options=_options(strict=False))


def clip_gradients(parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """`clip_grad_norm_` over a mix of sharded (DTensor) and plain gradients; returns the global norm."""
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in parameters if p.grad is not None]
    norms = []
    for group in ([g for g in grads if isinstance(g, DTensor)], [g for g in grads if not isinstance(g, DTensor)]):
        if group:
            norm = torch.nn.utils.get_total_norm(group)
            norms.append((norm.full_tensor() if isinstance(norm, DTensor) else norm).float().cpu())
    total = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.tensor(0.0)
    coefficient = max_norm / (float(total) + 1e-6)
    if coefficient < 1.0:
        for grad in grads:
            grad.mul_(coefficient)
    return total
