"""One stage of a training run: model set-up, data, optimizer, the step loop, checkpoints and resume.

What a step computes belongs to the stage's loss kind, an `Objective` (objectives/): it builds the module that
trains, prepares each batch in the loader thread and runs the forward and backward. The runner offers it a small
public surface (`encode`, `autocast`, the wrapped model, the temperature, `ctx`, `run_dir`); the optimizer,
checkpoints, resume and logging stay here.
"""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..data.mixture import Mixture, load_mixture
from ..data.sampler import MixtureSampler, SampledBatch
from ..losses import GradCache, Temperature, all_reduce_gradients, split_batch
from ..models.embedder import Embedder, EmbeddingModule
from ..parallel import World
from . import checkpoint as ckpt
from . import sharding
from .checkpoint import stage_dir
from .logs import TrainingLog
from .objectives import objective_for
from .optim import NonFiniteStep, build_optimizer, build_scheduler, optimizer_step, zero_step
from .prefetch import BatchPrefetcher, PreparedBatch
from .recipe import Recipe, StageSpec, save_recipe
from .trainable import apply_trainable, describe_trainable
from .zero import ZeroEngine, deepspeed_config

logger = logging.getLogger("uniembed.train")


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""


class RunHost(Protocol):
    """What a stage reads from the run it belongs to (trainer.py's `Trainer`)."""

    recipe: Recipe
    run_dir: Path
    ctx: World
    log: TrainingLog
    show_progress: bool
    on_step: Callable[[dict[str, Any]], None] | None

    def base_embedder(self, index: int) -> Embedder: ...


class StageRunner:
    """One stage: model set-up, data, optimizer, the step loop and its checkpoints."""

    def __init__(self, trainer: RunHost, index: int, stage: StageSpec, resume_from: ckpt.CheckpointRef | None) -> None:
        self.trainer, self.index, self.stage, self.resume_from = trainer, index, stage, resume_from
        self.recipe, self.ctx, self.run_dir = trainer.recipe, trainer.ctx, trainer.run_dir
        self.zero: ZeroEngine | None = None  # DeepSpeed's engine, made once the optimizer exists
        self.temperature_optimizer: torch.optim.Optimizer | None = None  # its own only under DeepSpeed
        torch.manual_seed(self.recipe.seed + 1000 * index)
        self.embedder = trainer.base_embedder(index)
        self.objective = objective_for(self)
        self._set_up_model()
        # `data` resolves against the recipe's folder (stage.data_dir); a mixture file's paths against its own folder
        self.mixture = load_mixture(stage.data, base_dir=stage.data_dir, skip_bad_rows=stage.skip_bad_rows)
        if stage.mine is not None:
            self.mixture = self._mine(self.mixture)
        self.mixture = self.objective.prepare(self.mixture)
        self._wrap_model()  # after mining: the main process mines alone, with the unsharded model
        self.sampler = MixtureSampler(self.mixture, stage.batch_size, seed=self.recipe.seed + index,
                                      epochs=None if stage.max_steps else stage.epochs,
                                      rank=self.ctx.rank, world_size=self.ctx.size, batching=stage.batching)
        self.total_steps = stage.max_steps or self.sampler.estimated_steps() or 1
        self.sampler_state = self.sampler.state_dict()  # the position after the last batch that trained
        tasks = list(self.mixture.sources) if stage.temperature.per_task else None
        self.temperature = Temperature(stage.temperature.init, learnable=stage.temperature.learnable, tasks=tasks,
                                       min_tau=stage.temperature.min, max_tau=stage.temperature.max).to(self.ctx.device)
        self.zero = self._zero_engine() if self.recipe.distributed == "deepspeed" and self.ctx.size > 1 else None
        if self.zero is None:
            self.optimizer = build_optimizer(self.module, self.temperature.parameters(), stage.lr, stage.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, stage.schedule, self.total_steps, stage.warmup_ratio)
        self.temperature_scheduler = (None if self.temperature_optimizer is None else build_scheduler(
            self.temperature_optimizer, stage.schedule, self.total_steps, stage.warmup_ratio))
        self.objective.start()
        self.checkpoints = ckpt.StageCheckpoints(
            self.run_dir, self.ctx, self.recipe, index, stage.name, module=self.module, optimizer=self.optimizer,
            scheduler=self.scheduler, temperature=self.temperature, sampler=self.sampler, sharded=self.sharded,
            zero=self.zero, temperature_optimizer=self.temperature_optimizer,
            temperature_scheduler=self.temperature_scheduler)
        self.step = 0
        if resume_from is not None:
            self.step = self.checkpoints.restore(resume_from.path)
            self.sampler_state = self.sampler.state_dict()
            logger.info("resumed stage %d (%s) at step %d from %s", index, stage.name, self.step, resume_from.path)

    # ---- set-up --------------------------------------------------------------------------------
    def _set_up_model(self) -> None:
        spec = self.recipe.stage_trainable(self.stage)
        backbone = self.embedder.backbone
        backbone.model = apply_trainable(backbone.hf_model, spec)
        if self.recipe.gradient_checkpointing:
            backbone.hf_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if hasattr(backbone.model, "enable_input_require_grads"):
                backbone.model.enable_input_require_grads()
        self.embedder.module = EmbeddingModule(backbone, self.embedder.config, head=self.embedder.module.head)
        self.module = self.objective.build_module(self.embedder).to(self.ctx.device).train()
        self.wrapped: torch.nn.Module = self.module
        trainable = sum(p.numel() for p in self.module.parameters() if p.requires_grad)
        logger.info("stage %d (%s): %s trainable of %s parameters: %s", self.index, self.stage.name,
                    f"{trainable:,}", f"{self.embedder.num_parameters():,}", describe_trainable(self.module, spec))

    def _wrap_model(self) -> None:
        spec = self.recipe.stage_trainable(self.stage)
        # Full fine-tuning trains parameters some steps never reach, vision tower frozen or not: an untied LM head
        # (an embedder never calls it), LLaVA-OneVision's image_newline (outside the tower, used only with images),
        # the tower itself on a rank whose share has no image. DDP must look for them, or its next step fails with
        # "Expected to have finished reduction". LoRA/DoRA adapters sit in the language model, which every step runs.
        self.wrapped = sharding.wrap_for_training(
            self.module, strategy=self.recipe.distributed, world=self.ctx.size, device=self.ctx.device,
            find_unused_parameters=spec.mode == "full", bf16=self._bf16())
        self.sharded = sharding.is_sharded(self.module)
        if self.sharded:
            logger.info("stage %d (%s): FSDP2 over %d ranks (%d blocks sharded)", self.index, self.stage.name,
                        self.ctx.size, sum(sharding.is_sharded(sub) for sub in self.module.modules()))

    def _zero_engine(self) -> ZeroEngine:
        """DeepSpeed ZeRO around the model, with the model's optimizer; the temperature gets its own."""
        stage = self.stage
        self.optimizer = build_optimizer(self.module, [], stage.lr, stage.weight_decay)
        learnable = [p for p in self.temperature.parameters() if p.requires_grad]
        self.temperature_optimizer = build_optimizer(None, learnable, stage.lr, 0.0) if learnable else None
        config = deepspeed_config(self.recipe.deepspeed, batch_size=stage.batch_size, world=self.ctx.size,
                                  max_grad_norm=stage.max_grad_norm, bf16=self._bf16())
        zero = ZeroEngine(self.module, self.optimizer, config)
        self.wrapped = zero.engine
        logger.info("stage %d (%s): DeepSpeed ZeRO-%d over %d ranks", self.index, stage.name,
                    config["zero_optimization"]["stage"], self.ctx.size)
        return zero

    def _mine(self, mixture: Mixture) -> Mixture:
        """The stage's mixture with negatives mined by the model it starts from (cached in the run directory)."""
        from ..mining.stage import mine_mixture, mining_options

        options = mining_options(self.stage.mine, f"stage '{self.stage.name}'")
        self.module.eval()
        try:
            return mine_mixture(self.embedder, mixture, options,
                                self.run_dir / "mined" / stage_dir(self.run_dir, self.index, self.stage).name,
                                is_main=self.ctx.is_main, barrier=self.ctx.barrier, progress=self.trainer.show_progress)
        finally:
            self.module.train()

    # ---- the step ----------------------------------------------------------------------------------
    def _bf16(self) -> bool:
        return self.ctx.device.type == "cuda" and self.recipe.precision in ("auto", "bf16")

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA (under DeepSpeed its bf16 mode casts the model itself), else nothing."""
        return torch.autocast("cuda", dtype=torch.bfloat16) if self._bf16() and self.zero is None else contextlib.nullcontext()

    def encode(self, decoded: list, **forward: Any) -> torch.Tensor:
        """Embeddings of decoded items by the model as it trains (with gradient); `forward` goes to the module
        (`multi_vector=True, pad_to=L`: late-interaction token vectors).

        Length groups halve the padded tokens of a step. Not under FSDP: every forward of a sharded layer
        all-gathers, so every rank would have to run the same number of groups.
        """
        batch = self.embedder.collate(decoded) if self.sharded else self.embedder.collate_by_length(decoded)
        with self.autocast():
            return self.wrapped(batch, **forward)

    def grad_cache(self, loss_fn: Callable[..., torch.Tensor],
                   encoder: Callable[[list], torch.Tensor] | None = None) -> GradCache:
        """GradCache over `encoder` (default `encode`), chunked as the stage says, synchronised and split as the
        model is distributed."""
        return GradCache([encoder or self.encode], loss_fn, self.stage.grad_cache_chunk,
                         sync_modules=[self.wrapped] if self.ctx.size > 1 and self.zero is None else (),
                         split_fn=sharding.equal_chunk_split if self.sharded else split_batch,
                         backward=self.zero.backward if self.zero is not None else None)

    def _train_step(self, ready: PreparedBatch) -> float:
        loss = self.objective.step(ready.batch, ready.prepared)
        value = float(loss.detach())
        if self.ctx.size > 1:
            all_reduce_gradients(list(self.temperature.parameters()))
            reduced = torch.tensor([value], device=self.ctx.device)
            dist.all_reduce(reduced)
            value = float(reduced) / self.ctx.size
        return value

    def prepare_batch(self, batch: SampledBatch) -> Any:
        """The batch as its objective prepares it (run in the loader thread, ahead of the step)."""
        return self.objective.prepare_batch(batch)

    def _optimizer_step(self, loss: float) -> float:
        """Apply the step's gradients (clipped); returns the gradient norm. Non-finite: TrainingError."""
        try:
            if self.zero is not None:
                return zero_step(self.zero, self.scheduler, self.temperature, self.temperature_optimizer,
                                 self.temperature_scheduler, loss, self.stage.max_grad_norm)
            return optimizer_step(self.optimizer, self.scheduler, self.temperature, loss, self.stage.max_grad_norm,
                                  self.sharded)
        except NonFiniteStep as exc:
            raise self._non_finite(exc.what, exc.outcome) from None

    def _non_finite(self, what: str, outcome: str) -> TrainingError:
        last = ckpt.latest_checkpoint(self.run_dir)
        return TrainingError(
            f"non-finite {what} at stage {self.index} ('{self.stage.name}') step {self.step}; {outcome}. Last good "
            f"checkpoint: {last.path if last else 'none'}. Lower the learning rate, raise the temperature, or check "
            "the data, then resume with --resume.")

    # ---- loop --------------------------------------------------------------------------------------
    def run(self) -> None:
        progress = tqdm(total=self.total_steps, initial=self.step, desc=f"stage {self.index} {self.stage.name}",
                        unit="step", disable=not (self.trainer.show_progress and self.ctx.is_main))
        save_every = self.recipe.save_every
        started, pairs = time.perf_counter(), 0
        loader = BatchPrefetcher(self.sampler, self.prepare_batch)
        try:
            while self.step < self.total_steps:
                ready = loader.next()
                if ready is None:
                    break
                batch, self.sampler_state = ready.batch, ready.sampler_state
                loss = self._train_step(ready)
                self.step += 1
                grad_norm = self._optimizer_step(loss)
                pairs += batch.global_size
                entry = self._log_entry(batch, loss, grad_norm, pairs / (time.perf_counter() - started))
                progress.set_postfix(loss=f"{loss:.4f}", lr=f"{entry['lr']:.2e}", tau=f"{entry['temperature']:.4f}")
                progress.update(1)
                if save_every and self.step % save_every == 0 and self.step < self.total_steps:
                    self._save_checkpoint()
        finally:
            loader.close()
            progress.close()
        self._save_checkpoint()
        self._save_output()

    def _log_entry(self, batch: SampledBatch, loss: float, grad_norm: float, throughput: float) -> dict[str, Any]:
        taus = self.temperature.values()
        entry = {"stage": self.stage.name, "stage_index": self.index, "step": self.step, "loss": loss,
                 "lr": self.scheduler.get_last_lr()[0], "temperature": float(sum(taus.values()) / len(taus)),
                 "grad_norm": grad_norm, "pairs_per_s": throughput, "source": batch.source}
        if self.step % max(1, self.recipe.log_every) == 0 or self.step == self.total_steps:
            global_step = sum(s.max_steps or 0 for s in self.recipe.stages[: self.index]) + self.step
            self.trainer.log.write(entry, global_step)
            if self.trainer.on_step:
                self.trainer.on_step(entry)
        return entry

    # ---- persistence -------------------------------------------------------------------------------
    def output_dir(self, index: int) -> Path:
        """The folder stage `index` of this run writes its model to."""
        return stage_dir(self.run_dir, index, self.recipe.stages[index])

    def _save_checkpoint(self) -> None:
        self.checkpoints.save(self.step, self.total_steps, self.sampler_state)

    def _save_output(self) -> None:
        """The stage's model, merged: a normal checkpoint that `Embedder.from_pretrained` loads."""
        weights = self.checkpoints.full_weights()  # FSDP: a collective
        if self.ctx.is_main:
            out = self.output_dir(self.index)
            with ckpt.atomic_directory(out) as tmp:
                self.objective.save_output(tmp, weights)
                save_recipe(self.recipe, tmp / "recipe.yaml")
                ckpt.write_json(tmp / "training_state.json", {"stage": self.stage.name, "steps": self.step,
                                                              "temperature": self.temperature.values()})
        self.ctx.barrier()
