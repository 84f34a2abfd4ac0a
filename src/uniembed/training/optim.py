"""Optimizer and schedule: AdamW, no weight decay on biases, norms or temperatures (chosen by
parameter shape, as open_clip does, not by name); warm-up then constant / linear / cosine decay.
`optimizer_step` and `zero_step` apply one step's gradients (plain or FSDP2, and DeepSpeed ZeRO)."""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import nn

from . import sharding


def build_optimizer(model: nn.Module | None, extra: Iterable[nn.Parameter], lr: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for parameter in model.parameters() if model is not None else ():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    no_decay += [p for p in extra if p.requires_grad]  # temperatures: never decayed
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(0.9, 0.999), eps=1e-8,
                             fused=fusable([*decay, *no_decay]) or None)


def fusable(parameters: list[nn.Parameter]) -> bool:
    """Whether torch's fused AdamW kernel takes these parameters: plain (not FSDP2's DTensor) floating tensors on
    CPU or CUDA. It updates every tensor in one kernel where the default loops over them, ~10 small operations each
    (a 58-tensor tiny model: 0.9 ms a step against 5.7 ms on one CPU thread; the same update to float rounding)."""
    return bool(parameters) and all(type(p.data) is torch.Tensor and p.is_floating_point()
                                    and p.device.type in ("cpu", "cuda") for p in parameters)


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int,
                    warmup_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    from transformers import get_scheduler

    names = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}
    warmup = int(math.ceil(warmup_ratio * total_steps))
    return get_scheduler(names[schedule], optimizer, num_warmup_steps=warmup, num_training_steps=max(1, total_steps))


class NonFiniteStep(Exception):
    """A step met a non-finite `what` (loss or gradient norm); `outcome` says whether it was applied."""

    def __init__(self, what: str, outcome: str) -> None:
        super().__init__(f"non-finite {what}; {outcome}")
        self.what, self.outcome = what, outcome


def optimizer_step(optimizer: torch.optim.Optimizer, scheduler: Any, temperature: Any, loss: float,
                   max_grad_norm: float | None, sharded: bool) -> float:
    """Clip, step and zero the gradients of every parameter `optimizer` holds; returns the gradient norm.
    A non-finite loss or norm raises NonFiniteStep before anything is applied."""
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    if sharded:  # DDP already leaves a parameter no rank used without a gradient; FSDP2 holds zeros there
        sharding.drop_unused_gradients(parameters)
    max_norm = max_grad_norm or float("inf")
    norm = (sharding.clip_gradients(parameters, max_norm) if sharded
            else torch.nn.utils.clip_grad_norm_(parameters, max_norm))
    if not math.isfinite(loss) or not torch.isfinite(norm):
        raise NonFiniteStep("loss" if not math.isfinite(loss) else "gradient norm", "stopped without applying it")
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    temperature.clamp_()
    return float(norm)


def zero_step(zero: Any, scheduler: Any, temperature: Any, temperature_optimizer: torch.optim.Optimizer | None,
              temperature_scheduler: Any, loss: float, max_grad_norm: float | None) -> float:
    """DeepSpeed clips and steps the model; the temperature's optimizer steps beside it, its gradient clipped
    by the norm over both, as one optimizer would. Returns that norm (nan when DeepSpeed reports none)."""
    if not math.isfinite(loss):
        raise NonFiniteStep("loss", "stopped without applying it")
    model_norm = zero.step()
    if model_norm is not None and not math.isfinite(model_norm):  # found while stepping: never checkpointed
        raise NonFiniteStep("gradient norm", "stopped; this step is not saved")
    scheduler.step()
    grads = [p.grad for p in temperature.parameters() if p.grad is not None]
    temperature_norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
    norm = None if model_norm is None else math.hypot(model_norm, temperature_norm)
    if temperature_optimizer is not None:
        total = temperature_norm if norm is None else norm  # no model norm from DeepSpeed: the temperature's own
        for grad in grads:
            grad.mul_(min((max_grad_norm or float("inf")) / (total + 1e-6), 1.0))
        temperature_optimizer.step()
        temperature_scheduler.step()
        temperature_optimizer.zero_grad(set_to_none=True)
    temperature.clamp_()
    return float("nan") if norm is None else norm
