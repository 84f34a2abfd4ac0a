"""What every loss kind shares: its strict options (`LossOptions`), how it trains (`Objective`), and what it may
use of the stage it runs in (`StageHost`, the public surface of stage.py's `StageRunner`).

A stage hands its loss kind five things: which module trains (`build_module`), what data it trains on
(`prepare`, once before the sampler is built), the set-up that needs the wrapped model (`start`), a batch's
items decoded and tokenised in the loader thread (`prepare_batch`), one step's forward and backward (`step`),
and what the stage writes (`save_output`). Checkpoints, resume, logging and the optimizer stay in the runner,
so every kind resumes the same way.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol

import torch
from torch import nn

from ...errors import ConfigError, reject_unknown_fields
from ...losses.matryoshka import matryoshka_loss

if TYPE_CHECKING:  # pragma: no cover
    from ...data.mixture import Mixture
    from ...data.sampler import SampledBatch
    from ...losses import GradCache, Temperature
    from ...models.embedder import Embedder
    from ..recipe import Recipe, StageSpec


@dataclass
class LossOptions:
    """A loss kind's recipe options (`stages[i].loss`); each kind subclasses it with its own fields.

    The class attributes tell the recipe and the trainer what the kind needs, so no other module asks "which kind".
    """

    kind: str = ""
    makes_embedder: ClassVar[bool] = True  # the stage writes an embedding model (the re-ranker's does not)
    source_batches: ClassVar[bool] = False  # reads each batch's source: needs `batching: source`
    ddp_only: ClassVar[bool] = False  # runs with distributed: ddp only (not FSDP or DeepSpeed)

    def uses_negatives(self) -> bool:
        """Whether the stage reads the examples' (mined) negatives: a stage with `mine` must."""
        return False

    def validate(self, recipe: "Recipe", stage: "StageSpec", where: str) -> None:
        """Raise ConfigError for options that cannot work in this stage of `recipe` (run when the recipe loads)."""


@dataclass
class MatryoshkaSpec:
    """`loss.matryoshka`: train every prefix width in `dims` (descending), each loss term scaled by `weights`."""

    dims: list[int]
    weights: list[float] | None = None

    @classmethod
    def parse(cls, raw: Any, where: str) -> "MatryoshkaSpec":
        """From the recipe's mapping; ConfigError naming `where` for unknown keys or bad dims/weights."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: loss.matryoshka must be a mapping like {{dims: [1024, 256, 64]}}, got {raw!r}")
        reject_unknown_fields(cls, raw, "key(s)", f"{where}: loss.matryoshka")
        dims, weights = raw.get("dims"), raw.get("weights")
        if not isinstance(dims, list) or not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                               for d in dims):
            raise ConfigError(f"{where}: loss.matryoshka.dims must be a non-empty list of positive integers, got {dims!r}")
        if dims != sorted(set(dims), reverse=True):
            raise ConfigError(f"{where}: loss.matryoshka.dims must be distinct and descending, got {dims}; "
                              f"write {sorted(set(dims), reverse=True)}")
        if weights is not None and (not isinstance(weights, list) or len(weights) != len(dims) or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in weights)):
            raise ConfigError(f"{where}: loss.matryoshka.weights must be {len(dims)} positive numbers (one per dim), "
                              f"got {weights!r}")
        return cls(dims=list(dims), weights=None if weights is None else [float(w) for w in weights])

    def check_width(self, dimension: int, where: str) -> None:
        """Refuse dims wider than the model's embedding (known once the model is loaded)."""
        if self.dims[0] > dimension:
            raise ConfigError(f"{where}: loss.matryoshka.dims {self.dims} exceed the model's {dimension} "
                              f"dimensions; use dims of at most {dimension}")


@dataclass
class EmbeddingLossOptions(LossOptions):
    """Options of the kinds that score embeddings (contrastive, relational): they share `matryoshka`."""

    matryoshka: dict[str, Any] | None = None  # {dims: [...], weights: [...]}: MatryoshkaSpec

    def matryoshka_spec(self, where: str = "stage") -> MatryoshkaSpec | None:
        return None if self.matryoshka is None else MatryoshkaSpec.parse(self.matryoshka, where)

    def validate(self, recipe: "Recipe", stage: "StageSpec", where: str) -> None:
        self.matryoshka_spec(where)


class StageHost(Protocol):
    """What an objective uses of the stage it runs in (stage.py's `StageRunner`)."""

    recipe: "Recipe"
    stage: "StageSpec"
    index: int
    ctx: Any  # parallel.World: rank, size, device, is_main, barrier
    run_dir: Path
    embedder: "Embedder"
    mixture: "Mixture"
    wrapped: nn.Module  # the model as it trains: DDP/FSDP/DeepSpeed around the objective's module
    temperature: "Temperature"

    def autocast(self) -> contextlib.AbstractContextManager: ...

    def encode(self, decoded: list, **forward: Any) -> torch.Tensor: ...

    def output_dir(self, index: int) -> Path: ...

    def grad_cache(self, loss_fn: Callable[..., torch.Tensor],
                   encoder: Callable[[list], torch.Tensor] | None = None) -> "GradCache": ...


class Objective:
    """How one loss kind trains; see the module docstring. Subclasses set `options_class`."""

    options_class: ClassVar[type[LossOptions]] = LossOptions

    def __init__(self, runner: StageHost) -> None:
        self.runner = runner
        self.stage = runner.stage
        self.options = runner.stage.loss

    def build_module(self, embedder: "Embedder") -> nn.Module:
        return embedder.module

    def prepare(self, mixture: "Mixture") -> "Mixture":
        return mixture

    def start(self) -> None:
        """Set-up after the model is wrapped and the optimizer made, before a checkpoint is restored."""

    def prepare_batch(self, batch: "SampledBatch") -> Any:
        """The batch's items decoded and tokenised: runs in the loader thread, ahead of `step`."""
        return None

    def step(self, batch: "SampledBatch", prepared: Any) -> torch.Tensor:
        """Forward and backward of one batch; returns the loss (detached or not)."""
        raise NotImplementedError

    def save_output(self, directory: Path, weights: dict[str, torch.Tensor] | None) -> None:
        """Write the stage's model; `weights` are the full tensors of a sharded model (else None), keyed by the
        names of `embedder.module` (what the default `build_module` trains): the backbone's and, on a multi-vector
        model, its head's."""
        embedder = self.runner.embedder
        module = embedder.module
        if weights is None:
            embedder.save_pretrained(directory)
            return
        head = None if module.head is None else child_state(weights, module, module.head)
        embedder.save_pretrained(directory, state_dict=child_state(weights, module, module.vlm), head_state=head)


def child_state(state: dict[str, torch.Tensor], module: nn.Module, child: nn.Module) -> dict[str, torch.Tensor]:
    """The entries of `state` (a state dict of `module`) that belong to `child`, one of its direct children,
    keyed by the child's own names."""
    prefix = next(name for name, sub in module.named_children() if sub is child) + "."
    return {name[len(prefix):]: value for name, value in state.items() if name.startswith(prefix)}


def accumulate(runner: StageHost, total: int, chunk: int | None, loss_of: Callable[[list[int]], torch.Tensor]) -> torch.Tensor:
    """Backward a per-row-separable loss over row chunks, each scaled by its share of `total` rows.

    The gradients equal those of one unchunked pass; under DDP all but the last chunk skip the sync.
    """
    value = torch.zeros(())
    groups = row_groups(total, chunk)
    for number, group in enumerate(groups):
        last = number == len(groups) - 1
        sync = contextlib.nullcontext() if last or not hasattr(runner.wrapped, "no_sync") else runner.wrapped.no_sync()
        with sync:
            loss = loss_of(group) * (len(group) / total)
            loss.backward()
        value = value + loss.detach().float().cpu()
    return value


def row_groups(total: int, chunk: int | None) -> list[list[int]]:
    """Rows 0..total-1 in chunks of `chunk` (one group when None)."""
    rows = list(range(total))
    return [rows[start: start + chunk] for start in range(0, total, chunk)] if chunk else [rows]


class EmbeddingObjective(Objective):
    """A kind whose step embeds each example's items in one GradCache step and computes a loss over the
    embeddings (contrastive, relational): subclasses give `items` and `loss`."""

    def items(self, batch: "SampledBatch") -> list:
        """Queries, then positives (subclasses append negatives)."""
        return [example.query for example in batch.examples] + [example.positives[0] for example in batch.examples]

    def loss(self, queries: torch.Tensor, candidates: torch.Tensor, batch: "SampledBatch",
             candidate_modality: torch.Tensor, target_modality: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def start(self) -> None:
        where = f"stage '{self.stage.name}'"
        self.matryoshka = self.options.matryoshka_spec(where)
        if self.matryoshka is not None:
            embedder = self.runner.embedder
            self.matryoshka.check_width(embedder.dimension, where)
            embedder.config = embedder.config.replace(matryoshka_dims=list(self.matryoshka.dims))
        self.grad_cache = self.runner.grad_cache(self._loss)

    def prepare_batch(self, batch: "SampledBatch") -> list:
        embedder = self.runner.embedder
        return [embedder.prepare(item, position) for position, item in enumerate(self.items(batch))]

    def step(self, batch: "SampledBatch", prepared: list) -> torch.Tensor:
        device = self.runner.ctx.device
        num_queries = len(batch.examples)
        candidates = [decoded.item for decoded in prepared[num_queries:]]
        return self.grad_cache.step(
            prepared, batch=batch, num_queries=num_queries,
            candidate_modality=torch.tensor([item.modality for item in candidates], device=device),
            target_modality=torch.tensor([example.target_modality for example in batch.examples], device=device))

    def _loss(self, embeddings: torch.Tensor, *, batch: "SampledBatch", num_queries: int,
              candidate_modality: torch.Tensor, target_modality: torch.Tensor) -> torch.Tensor:
        """The kind's loss on the cached embeddings; with `matryoshka`, summed over the cut widths."""
        queries, candidates = embeddings[:num_queries], embeddings[num_queries:]
        if self.matryoshka is None:
            return self.loss(queries, candidates, batch, candidate_modality, target_modality)
        return matryoshka_loss(lambda q, c: self.loss(q, c, batch, candidate_modality, target_modality),
                               queries, candidates, self.matryoshka.dims, self.matryoshka.weights)
