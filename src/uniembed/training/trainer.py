"""The training engine: runs a recipe's stages (stage.py) with checkpoints, resume, logging and distribution.

One process per device (`torchrun` / `accelerate launch` set the environment, see parallel.py). A run
killed at any moment resumes from the newest complete checkpoint and, on one CPU process with the same seed,
ends with exactly the same weights. A failure to write the run names the folder, the fix and the last good
checkpoint.
"""
from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..models.embedder import Embedder
from ..parallel import join_world, leave_world
from . import checkpoint as ckpt
from .checkpoint import KEEP_CHECKPOINTS, stage_dir, stage_done
from .logs import TrainingLog
from .objectives import previous_embedding_stage
from .recipe import Recipe, StageSpec, learning_notes, save_recipe
from .stage import StageRunner, TrainingError

__all__ = ["Trainer", "StageRunner", "TrainingError", "stage_dir", "stage_done",
           "KEEP_CHECKPOINTS"]
logger = logging.getLogger("uniembed.train")


def _is_write_failure(exc: Exception, run_dir: Path) -> bool:
    """An OSError about a path in the run folder, or a disk that is full or read-only (torch.save reports its
    own write failures as RuntimeError)."""
    if isinstance(exc, RuntimeError):
        return "PytorchStreamWriter" in str(exc) or "cannot be opened" in str(exc)
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return True
    root = Path(os.path.abspath(run_dir))
    paths = [Path(os.path.abspath(os.fspath(p))) for p in (getattr(exc, "filename", None), getattr(exc, "filename2", None)) if p]
    # a path in the run folder, or the folder (or a parent) it could not create
    return any(path == root or root in path.parents or path in root.parents for path in paths)


class Trainer:
    """Runs every stage of `recipe` into `run_dir`; `resume=True` continues from the newest checkpoint."""

    def __init__(self, recipe: Recipe, run_dir: str | Path, resume: bool = False,
                 on_step: Callable[[dict[str, Any]], None] | None = None, show_progress: bool = True) -> None:
        self.recipe = recipe
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.on_step = on_step
        self.show_progress = show_progress
        self.ctx = join_world(timeout_minutes=None, accelerator_group=True)  # the job's parallel.World
        try:
            self.log = TrainingLog(self.run_dir, enabled=self.ctx.is_main)
        except OSError as exc:
            if not _is_write_failure(exc, self.run_dir):
                raise
            raise self._write_error(exc) from exc

    def run(self) -> Path:
        """Train every stage; returns the directory of the final model (loads with Embedder.from_pretrained).

        A failure to write the run (read-only folder, full disk) raises TrainingError naming the folder, the fix
        and the last good checkpoint."""
        if self.ctx.is_main:
            for note in learning_notes(self.recipe):  # before any time is spent
                logger.warning(note)
        try:
            return self._run()
        except (OSError, RuntimeError) as exc:
            if not _is_write_failure(exc, self.run_dir):
                raise
            raise self._write_error(exc) from exc

    def _write_error(self, exc: Exception) -> TrainingError:
        code = getattr(exc, "errno", None)
        if code in (errno.ENOSPC, errno.EDQUOT):
            fix = "free disk space (or raise the quota), or choose another --out"
        elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = "make the folder writable, or choose another --out"
        else:
            fix = "check that the folder can be written (a folder, not a file; space left), or choose another --out"
        try:
            last = ckpt.latest_checkpoint(self.run_dir)
        except OSError:
            last = None
        where = f" ('{exc.filename}')" if getattr(exc, "filename", None) else ""
        reason = getattr(exc, "strerror", None) or str(exc)
        resume = "; after the fix, --resume continues from it" if last else " (nothing was saved yet)"
        return TrainingError(f"cannot write the run folder '{self.run_dir}': {reason}{where}. Fix: {fix}. "
                             f"Last good checkpoint: {last.path if last else 'none'}{resume}.")

    def _run(self) -> Path:
        existing = ckpt.list_checkpoints(self.run_dir) or any(self.run_dir.glob("stage*-*/uniembed.json"))
        if existing and not self.resume:
            raise ConfigError(f"run directory '{self.run_dir}' already holds a run; pass --resume to continue it "
                              "or choose another --out")
        if self.ctx.is_main:
            ckpt.clean_partial(self.run_dir)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_recipe(self.recipe, self.run_dir / "recipe.yaml")
        self.ctx.barrier()
        latest = ckpt.latest_checkpoint(self.run_dir) if self.resume else None
        if latest is not None:
            self.log.truncate_after(latest.stage, latest.step)
        output = None
        try:
            for index, stage in enumerate(self.recipe.stages):
                # "model" links the last embedding model; a re-ranker stage's output is linked as "reranker"
                output = stage_dir(self.run_dir, index, stage) if stage.loss.makes_embedder else output
                if stage_done(self.run_dir, index, stage):
                    logger.info("stage %d (%s) already complete: %s", index, stage.name, output)
                    continue
                resume_from = latest if latest is not None and latest.stage == index else None
                self.stage_runner(index, stage, resume_from).run()
        finally:
            self.log.close()
        for index, stage in enumerate(self.recipe.stages):
            if not stage.loss.makes_embedder:
                self._link("reranker", stage_dir(self.run_dir, index, stage))
        if output is not None:
            self._link("model", output)
        self.ctx.barrier()
        leave_world()
        return self.run_dir / "model"

    def stage_runner(self, index: int, stage: StageSpec, resume_from: ckpt.CheckpointRef | None) -> "StageRunner":
        """The runner of one stage (benchmarks subclass it to count tokens and time steps)."""
        return StageRunner(self, index, stage, resume_from)

    def _link(self, name: str, target: Path) -> None:
        if not self.ctx.is_main:
            return
        link = self.run_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target.name)

    def base_embedder(self, index: int) -> Embedder:
        """Stage 0 (or a stage with from_previous: false) starts from the recipe's model; later stages
        from the previous embedding stage's merged output (re-ranker stages are not embedding models)."""
        stage = self.recipe.stages[index]
        previous = previous_embedding_stage(self.recipe, index)
        if previous is not None and stage.from_previous:
            return Embedder.from_pretrained(stage_dir(self.run_dir, previous, self.recipe.stages[previous]))
        return Embedder.from_pretrained(self.recipe.model, profile=self.recipe.profile, **self.recipe.embedding)
