"""Optimizer and schedule: AdamW, no weight decay on biases, norms or temperatures (chosen by
parameter shape, as open_clip does, not by name); warm-up then constant / linear / cosine decay."""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn


def build_optimizer(model: nn.Module | None, extra: Iterable[nn.Parameter], lr: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for parameter in model.parameters() if model is not None else ():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    no_decay += [p for p in extra if p.requires_grad]  # temperatures: never decayed
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(0.9, 0.999), eps=1e-8)


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int,
                    warmup_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    from transformers import get_scheduler

    names = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}
    warmup = int(math.ceil(warmup_ratio * total_steps))
    return get_scheduler(names[schedule], optimizer, num_warmup_steps=warmup, num_training_steps=max(1, total_steps))
