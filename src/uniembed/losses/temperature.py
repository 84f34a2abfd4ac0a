"""`Temperature`: a fixed, a learnable or a per-task learnable softmax temperature (docs/methods.md §2).

Learned as log(1/tau), as CLIP does, so steps are relative and tau stays positive, and clamped after each
optimizer step so it cannot collapse (tau -> 0 makes the loss a hard max) or explode.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError

DEFAULT_MIN_TAU = 0.005
DEFAULT_MAX_TAU = 1.0


class Temperature(nn.Module):
    """The loss temperature; call it (with the batch's task names when per-task) to get the value.

    - `Temperature(0.02)`: fixed, no parameters (VLM2Vec, UniME).
    - `Temperature(0.05, learnable=True)`: one learnable scalar (U-MARVEL).
    - `Temperature(0.05, tasks=["nli", "vqa"])`: one learnable value per task (RzenEmbed); calling it with
      the task name of each query gives a (B,) tensor for `contrastive_loss`.
    Call `clamp_()` after every optimizer step. Its parameters are found by `temperature_parameters(model)` so
    the trainer can keep them out of weight decay.
    """

    def __init__(
        self,
        init: float = 0.05,
        *,
        learnable: bool = False,
        tasks: Sequence[str] | None = None,
        min_tau: float = DEFAULT_MIN_TAU,
        max_tau: float = DEFAULT_MAX_TAU,
    ) -> None:
        super().__init__()
        if not 0 < min_tau <= max_tau:
            raise ConfigError(f"temperature range [{min_tau}, {max_tau}] is empty or not positive")
        if not min_tau <= init <= max_tau:
            raise ConfigError(
                f"initial temperature {init} is outside [{min_tau}, {max_tau}]; use e.g. 0.02 (fixed) or 0.05"
            )
        self.min_tau, self.max_tau = float(min_tau), float(max_tau)
        self.tasks: tuple[str, ...] | None = None
        log_scale = torch.tensor(math.log(1.0 / init), dtype=torch.float32)
        if tasks is not None:
            self.tasks = tuple(tasks)
            if not self.tasks or len(set(self.tasks)) != len(self.tasks):
                raise ConfigError(f"per-task temperature needs distinct task names, got {list(self.tasks)}")
            self._task_index = {name: i for i, name in enumerate(self.tasks)}
            self.log_scale = nn.Parameter(log_scale.repeat(len(self.tasks)))
        elif learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def learnable(self) -> bool:
        return isinstance(self.log_scale, nn.Parameter)

    def forward(self, tasks: Sequence[str] | None = None) -> Tensor:
        """A 0-d tensor, or for a per-task temperature a (B,) tensor for the B given task names."""
        if self.tasks is None:
            return torch.exp(-self.log_scale)
        if tasks is None:
            raise ValueError("this temperature is per task; pass the task name of every query: "
                             "temperature(batch_task_names)")
        indices = []
        for position, name in enumerate(tasks):
            if name not in self._task_index:
                raise ConfigError(f"query {position}: unknown task {name!r} for the per-task temperature; use one "
                                  f"of {list(self.tasks)} or add the task to the recipe's temperature tasks")
            indices.append(self._task_index[name])
        index = torch.tensor(indices, dtype=torch.long, device=self.log_scale.device)
        return torch.exp(-self.log_scale[index])

    @torch.no_grad()
    def clamp_(self) -> "Temperature":
        """Keep every temperature inside [min_tau, max_tau] (call after each optimizer step)."""
        self.log_scale.clamp_(math.log(1.0 / self.max_tau), math.log(1.0 / self.min_tau))
        return self

    def values(self) -> dict[str, float]:
        """Current temperature(s) for logging: {"temperature": tau} or {"temperature/<task>": tau}."""
        taus = torch.exp(-self.log_scale.detach().float()).tolist()
        if self.tasks is None:
            return {"temperature": taus}
        return {f"temperature/{name}": tau for name, tau in zip(self.tasks, taus)}

    def extra_repr(self) -> str:
        kind = "per-task" if self.tasks is not None else "learnable" if self.learnable else "fixed"
        return f"{kind}, range=[{self.min_tau}, {self.max_tau}]"


def temperature_parameters(module: nn.Module) -> Iterator[nn.Parameter]:
    """The learnable parameters of every `Temperature` inside `module` (to exclude from weight decay)."""
    for sub in module.modules():
        if isinstance(sub, Temperature) and sub.learnable:
            yield sub.log_scale
