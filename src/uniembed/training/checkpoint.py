"""Atomic checkpoints: written to a temporary directory, then renamed, so a SIGKILL at any moment
leaves either the previous complete checkpoint or the new one, never a half-written one.

`StageCheckpoints` saves and restores one stage's training state (plain, FSDP2 or DeepSpeed ZeRO) beside the
loop that trains it (stage.py)."""
from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..errors import ConfigError
from . import sharding
from .trainable import load_trainable_state, trainable_state

logger = logging.getLogger("uniembed.train")
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^stage(\d+)-step(\d+)$")


@dataclass(frozen=True)
class CheckpointRef:
    path: Path
    stage: int
    step: int


def checkpoint_name(stage: int, step: int) -> str:
    return f"stage{stage}-step{step:08d}"


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `final` in one rename."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if final.exists():
            old = final.parent / f".old-{final.name}-{os.getpid()}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def clean_partial(run_dir: Path) -> None:
    """Remove temporary directories a killed run left behind."""
    for parent in (run_dir, run_dir / CHECKPOINT_DIR):
        if parent.is_dir():
            for leftover in parent.glob(".tmp-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            for leftover in parent.glob(".old-*"):
                shutil.rmtree(leftover, ignore_errors=True)


def list_checkpoints(run_dir: Path) -> list[CheckpointRef]:
    root = Path(run_dir) / CHECKPOINT_DIR
    refs = []
    if root.is_dir():
        for path in root.iterdir():
            match = _NAME.match(path.name)
            if match and (path / "trainer_state.json").exists():
                refs.append(CheckpointRef(path, int(match.group(1)), int(match.group(2))))
    return sorted(refs, key=lambda ref: (ref.stage, ref.step))


def latest_checkpoint(run_dir: Path) -> CheckpointRef | None:
    refs = list_checkpoints(run_dir)
    return refs[-1] if refs else None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints (the newest is never removed)."""
    refs = list_checkpoints(run_dir)
    for ref in refs[: max(0, len(refs) - max(1, keep))]:
        shutil.rmtree(ref.path, ignore_errors=True)


def capture_rng() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_json(path: Path, payload: Any) -> None:
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


# ---- the run folder's layout: one folder per stage output ---------------------------------------
def stage_dir(run_dir: Path, index: int, stage: Any) -> Path:
    return Path(run_dir) / f"stage{index}-{stage.name}"


def stage_done(run_dir: Path, index: int, stage: Any) -> bool:
    return (stage_dir(run_dir, index, stage) / "uniembed.json").exists()


# ---- one stage's training state: plain, FSDP2 or DeepSpeed ZeRO --------------------------------
KEEP_CHECKPOINTS = 2


class StageCheckpoints:
    """Saves and restores one stage's training state under `run_dir/checkpoints/stageI-stepN`.

    Three layouts, as the model is distributed: plain (rank 0 holds everything: the trainable tensors and the
    optimizer state), FSDP2 (every rank gathers the full tensors and optimizer state, rank 0 writes them, so
    the files equal the plain layout's) and DeepSpeed ZeRO (every rank writes its optimizer partition into a
    `deepspeed/` folder that moves into the checkpoint). Every rank's random streams are kept, so a resumed
    run repeats an uninterrupted one exactly. `trainer_state.json` records the layout; resuming under another
    one is refused.
    """

    def __init__(self, run_dir: Path, ctx: Any, recipe: Any, index: int, stage_name: str, *, module: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, scheduler: Any, temperature: torch.nn.Module, sampler: Any,
                 sharded: bool, zero: Any = None, temperature_optimizer: torch.optim.Optimizer | None = None,
                 temperature_scheduler: Any = None) -> None:
        self.run_dir, self.ctx, self.recipe, self.index, self.stage_name = Path(run_dir), ctx, recipe, index, stage_name
        self.module, self.optimizer, self.scheduler, self.temperature, self.sampler = (
            module, optimizer, scheduler, temperature, sampler)
        self.sharded, self.zero = sharded, zero
        self.temperature_optimizer, self.temperature_scheduler = temperature_optimizer, temperature_scheduler

    def _optimized_modules(self) -> torch.nn.Module:
        """Every module the optimizer steps, under one root (names key a sharded optimizer's state)."""
        return torch.nn.ModuleDict({"model": self.module, "temperature": self.temperature})

    def save(self, step: int, total_steps: int, sampler_state: dict[str, Any]) -> None:
        """Write the state after `step` (a collective: every rank calls it); keeps the newest KEEP_CHECKPOINTS."""
        from .recipe import save_recipe

        rng_states = self.ctx.all_ranks(capture_rng())  # every rank's streams (dropout differs per rank)
        final = self.run_dir / CHECKPOINT_DIR / checkpoint_name(self.index, step)
        zero_state = final.parent / f".zero-{final.name}"  # every rank writes its partition, then it moves in
        if self.sharded:  # collectives: every rank gathers, rank 0 writes
            full = sharding.full_model_state(self.module)  # empty on every rank but 0
            weights = {name: full[name] for name, p in self.module.named_parameters() if p.requires_grad and name in full}
            optimizer = sharding.full_optimizer_state(self._optimized_modules(), self.optimizer)
        else:
            weights, optimizer = trainable_state(self.module), self.optimizer.state_dict()
        if self.zero is not None:
            optimizer = None  # partitioned: in the deepspeed/ folder
            if self.ctx.is_main and zero_state.exists():
                shutil.rmtree(zero_state)  # left by a run killed while saving
            self.ctx.barrier()
            self.zero.save(zero_state)
            self.ctx.barrier()
        if self.ctx.is_main:
            with atomic_directory(final) as tmp:
                torch.save(weights, tmp / "trainable.pt")
                torch.save(self.temperature.state_dict(), tmp / "temperature.pt")
                if optimizer is not None:
                    torch.save(optimizer, tmp / "optimizer.pt")
                else:
                    os.rename(zero_state, tmp / "deepspeed")
                if self.temperature_optimizer is not None:
                    torch.save({"optimizer": self.temperature_optimizer.state_dict(),
                                "scheduler": self.temperature_scheduler.state_dict()}, tmp / "temperature_optimizer.pt")
                torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
                torch.save({"ranks": rng_states}, tmp / "rng.pt")
                write_json(tmp / "sampler.json", sampler_state)
                save_recipe(self.recipe, tmp / "recipe.yaml")
                write_json(tmp / "trainer_state.json", {"stage_index": self.index, "stage": self.stage_name,
                                                         "step": step, "total_steps": total_steps,
                                                         "sharded": self.sharded, "deepspeed": self.zero is not None})
            prune_checkpoints(self.run_dir, KEEP_CHECKPOINTS)
        self.ctx.barrier()

    def restore(self, path: Path) -> int:
        """Load the state saved in `path` into the model, optimizers, schedulers, sampler and random streams;
        returns the step it was saved after."""
        state = read_json(path / "trainer_state.json")
        for key, used, what in (("sharded", self.sharded, "FSDP sharding"), ("deepspeed", self.zero is not None, "DeepSpeed")):
            if bool(state.get(key, False)) != used:
                raise ConfigError(f"checkpoint {path} was written {'with' if state.get(key) else 'without'} {what}; "
                                  "resume it with the same `distributed` setting and number of ranks")
        device = self.ctx.device
        self.temperature.load_state_dict(torch.load(path / "temperature.pt", map_location=device))
        if self.zero is not None:
            self.zero.load(path / "deepspeed")  # the weights and this rank's optimizer partition
            if self.temperature_optimizer is not None:
                saved = torch.load(path / "temperature_optimizer.pt", map_location=device)
                self.temperature_optimizer.load_state_dict(saved["optimizer"])
                self.temperature_scheduler.load_state_dict(saved["scheduler"])
        elif self.sharded:
            sharding.load_full_model_state(self.module, torch.load(path / "trainable.pt"))
            sharding.load_full_optimizer_state(self._optimized_modules(), self.optimizer,
                                               torch.load(path / "optimizer.pt", weights_only=False))
        else:
            load_trainable_state(self.module, torch.load(path / "trainable.pt", map_location=device))
            self.optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=device))
        self.scheduler.load_state_dict(torch.load(path / "scheduler.pt"))
        self.sampler.load_state_dict(read_json(path / "sampler.json"))
        self._restore_rng(torch.load(path / "rng.pt", weights_only=False), path)
        return int(state["step"])

    def _restore_rng(self, saved: dict[str, Any], path: Path) -> None:
        states = saved["ranks"] if "ranks" in saved else [saved]  # older checkpoints kept rank 0's only
        if self.ctx.rank < len(states):
            restore_rng(states[self.ctx.rank])
        if len(states) != self.ctx.size and self.ctx.is_main:
            logger.warning("checkpoint %s was written by %d process(es), resuming on %d: random streams of the other "
                           "ranks start from the seed, so the run will not repeat an uninterrupted one exactly",
                           path, len(states), self.ctx.size)

    def full_weights(self) -> dict[str, torch.Tensor] | None:
        """Under FSDP2, the model's full tensors, gathered by every rank (rank 0 holds them) and keyed by the
        model's own names (`objectives.base.child_state` picks a child's); None for an unsharded model, whose
        weights are whole on every rank."""
        return sharding.full_model_state(self.module) if self.sharded else None
