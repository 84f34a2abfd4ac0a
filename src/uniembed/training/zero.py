"""DeepSpeed ZeRO-1 for the trainer (`distributed: deepspeed`): the Adam state is partitioned across ranks.

The engine owns the model and its optimizer. Every backward that reaches the model goes through
`engine.backward`, GradCache's replays included; gradients stay local until the step's last backward (the
accumulation boundary), so ranks may run different numbers of chunks. The learnable temperature keeps a small
optimizer of its own outside the engine, its gradient averaged like DDP's.
ZeRO-2 and 3 are not offered: they reduce each gradient as backward produces it, and a rank whose share of a
batch has no image skips the vision tower, so ranks would reduce different tensors in a different order.
FSDP2 (`distributed: fsdp`) shards gradients and parameters instead.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from . import sharding

ZERO_STAGES = (1,)
TAG = "zero"  # the one checkpoint tag inside a uniembed checkpoint's deepspeed/ folder


def zero_stage(overrides: dict[str, Any]) -> int:
    """The ZeRO stage a recipe's `deepspeed` entries ask for (checked by recipe validation)."""
    return int(overrides.get("zero_optimization", {}).get("stage", ZERO_STAGES[0]))


def deepspeed_config(overrides: dict[str, Any], *, batch_size: int, world: int, max_grad_norm: float | None,
                     bf16: bool) -> dict[str, Any]:
    """uniembed's DeepSpeed config for one stage, with the recipe's `deepspeed` entries merged over it."""
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": max(1, batch_size // world),
        "gradient_accumulation_steps": 1,  # GradCache chunks set the boundary themselves
        "zero_optimization": {"stage": ZERO_STAGES[0]},
        "zero_allow_untested_optimizer": True,  # uniembed's AdamW with its weight-decay groups
        "gradient_clipping": float(max_grad_norm or 0.0),
        "bf16": {"enabled": bf16},
        "steps_per_print": 2**31 - 1,
    }
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) else value
    config.pop("train_batch_size", None)  # implied by the micro batch and the world size
    return config


def _kept(parameters: list[torch.nn.Parameter]) -> Callable[[], None]:
    """Copies of what a ZeRO-1 step changes for `parameters` (the weights, this rank's fp32 master slice and
    its Adam moments); the returned function puts them back. ZeRO's optimizer steps one flat partition per
    rank, so a parameter cannot be left out with a None gradient as DDP leaves it: its zero gradient would
    move it by momentum and weight decay. (Adam's step count is per partition, so the bias correction of
    its next used step counts the skipped steps; DDP's counts only the steps that used it.)"""
    saved = []
    for parameter in parameters:
        mapping = getattr(parameter, "_hp_mapping", None)  # this rank's fragment (None: in another's partition)
        fragments = [] if mapping is None else [mapping.get_hp_fragment()] + list((mapping.optim_fragment or {}).values())
        saved.append([(parameter.data, parameter.data.clone())] + [(f, f.detach().clone()) for f in fragments])

    @torch.no_grad()  # the fragments are views of ZeRO's flat partition, a leaf that requires grad
    def restore() -> None:
        for pairs in saved:
            for live, copy in pairs:
                live.copy_(copy)

    return restore


class ZeroEngine:
    """The model under a DeepSpeed engine: the step's forward, backward, optimizer step and checkpoint."""

    def __init__(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, config: dict[str, Any]) -> None:
        try:
            import deepspeed
        except ImportError as error:
            raise ConfigError("distributed: deepspeed needs DeepSpeed: `pip install deepspeed` (on a CPU-only machine: "
                              "DS_BUILD_OPS=0 pip install --no-build-isolation deepspeed)") from error
        self.trained = [p for group in optimizer.param_groups for p in group["params"]]  # ZeRO swaps these out
        self.engine, *_ = deepspeed.initialize(model=module, optimizer=optimizer, config=config,
                                               dist_init_required=False)
        self._used = torch.zeros(len(self.trained), dtype=torch.bool)  # this rank's backwards reached it
        self._unused: list[torch.nn.Parameter] = []  # no rank's did: the step leaves it as it is
        for index, parameter in enumerate(self.trained):
            parameter.register_post_accumulate_grad_hook(functools.partial(self._mark_used, index))

    def _mark_used(self, index: int, _: torch.nn.Parameter) -> None:
        self._used[index] = True

    def backward(self, scalar: torch.Tensor, last: bool) -> None:
        """One backward of the step; the step's last one reduces the gradients across ranks."""
        self.engine.set_gradient_accumulation_boundary(last)
        if last:  # ZeRO reduces only the gradients a rank has: one that skipped the vision tower adds zeros
            for parameter in self.trained:
                if parameter.grad is None:
                    parameter.grad = torch.zeros_like(parameter)
        self.engine.backward(scalar)
        if last:
            used = sharding.used_anywhere(self._used.to(self.trained[0].device) if self.trained else self._used)
            self._unused = [parameter for parameter, flag in zip(self.trained, used) if not flag]
            self._used.zero_()

    def step(self) -> float | None:
        """Clip (the config's `gradient_clipping`), step and zero the gradients; returns the global norm (None
        when DeepSpeed did not compute one). A parameter no rank used this step keeps its weights and Adam state,
        as under DDP (see `_kept`)."""
        restore = _kept(self._unused)
        self.engine.step()
        restore()
        self._unused = []
        norm = self.engine.get_global_grad_norm()
        return None if norm is None else float(norm)

    def save(self, directory: Path) -> None:
        """Every rank writes its partition of the optimizer state (a collective)."""
        self.engine.save_checkpoint(str(directory), tag=TAG, save_latest=False, exclude_frozen_parameters=True)

    def load(self, directory: Path) -> None:
        path, _ = self.engine.load_checkpoint(str(directory), tag=TAG, load_module_strict=False,
                                              load_optimizer_states=True, load_lr_scheduler_states=False)
        if path is None:
            raise ConfigError(f"no DeepSpeed state under {directory}; resume with the `distributed` setting and "
                              "number of ranks that wrote the checkpoint")
