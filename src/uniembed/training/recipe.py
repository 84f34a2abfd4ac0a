"""Recipes: a YAML file naming the model, what trains, and a list of stages; any key overridable.

    name: unite
    model: /models/Qwen2-VL-7B-Instruct        # or "tiny", "tiny:small"
    embedding: {pooling: eos, positions: 1d}   # EmbeddingConfig overrides
    trainable: {mode: lora, r: 8, alpha: 16}
    seed: 0
    save_every: 500
    stages:
      - name: retrieval_adaptation
        data: data/unite_stage1_mixture.yaml   # a mixture file, or an inline {sources: [...]} mapping
        loss: {kind: contrastive, symmetric: true}
        temperature: {init: 0.03}
        batch_size: 1024
        grad_cache_chunk: 64
        lr: 1.0e-4
        epochs: 1

`--set stages.1.lr=2e-5 --set model=tiny` overrides any key (values parsed as YAML).

A relative `data:` path (and the relative paths of an inline mixture) resolves against the recipe file's
folder, so a recipe finds its mixtures from any working directory; a `data` value given with `--set` resolves
against the working directory, where the user typed it. Each stage records that folder in `data_dir`.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..data.sampler import BATCHING
from ..errors import ConfigError, reject_unknown_fields
from ..models.profile import get_profile
from .objectives import ContrastiveOptions, LossOptions, options_class

logger = logging.getLogger("uniembed.train")
TRAIN_MODES = ("lora", "dora", "full")
SCHEDULES = ("constant", "linear", "cosine")
DISTRIBUTED = ("ddp", "fsdp", "deepspeed")  # how the model spans ranks: sharding.py, zero.py
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainableSpec:
    """What trains: LoRA / DoRA adapters on `target_modules` (language model by default), or everything."""

    mode: str = "lora"
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_LORA_TARGETS))
    freeze_vision: bool = True
    text_only: bool = False  # train only the language model even in full mode (UniME stage 1)


@dataclass
class TemperatureSpec:
    init: float = 0.02
    learnable: bool = False
    per_task: bool = False
    min: float = 0.005
    max: float = 1.0


@dataclass
class StageSpec:
    name: str
    data: Any
    loss: LossOptions = field(default_factory=ContrastiveOptions)  # its kind's class: training/objectives/
    temperature: TemperatureSpec = field(default_factory=TemperatureSpec)
    batch_size: int = 32
    batching: str = "source"  # source: each batch from one source; mixed: sources (and modalities) mixed
    grad_cache_chunk: int | None = None
    lr: float = 2e-5
    schedule: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    max_steps: int | None = None
    epochs: int | None = None
    from_previous: bool = True
    trainable: TrainableSpec | None = None
    skip_bad_rows: bool | None = None  # None: as the mixture file says
    # the folder a relative `data` path (or an inline mixture's relative paths) resolves against: set by
    # `load_recipe` to the recipe file's folder, or to the working directory for a `--set` value; None: cwd
    data_dir: str | None = None
    # mine hard negatives with the model this stage starts from before training (U-MARVEL stage 2):
    # the options of `uniembed mine` (top, rank_range, num_negatives, absolute_margin, relative_margin, ...)
    mine: dict[str, Any] | None = None


@dataclass
class Recipe:
    name: str
    model: str
    stages: list[StageSpec]
    embedding: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None  # the model profile it trains under (`uniembed profiles`); `embedding` overrides it
    trainable: TrainableSpec = field(default_factory=TrainableSpec)
    seed: int = 0
    save_every: int = 0
    gradient_checkpointing: bool = False
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU
    distributed: str = "ddp"  # on several ranks: ddp (replicas), fsdp (FSDP2 sharding, full fine-tuning), deepspeed
    deepspeed: dict[str, Any] = field(default_factory=dict)  # DeepSpeed config entries over uniembed's (ZeRO-1)
    log_every: int = 1
    description: str = ""
    published: dict[str, Any] = field(default_factory=dict)  # the paper's settings, for the record

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def stage_trainable(self, stage: StageSpec) -> TrainableSpec:
        return stage.trainable or self.trainable


def _build(cls: type, data: Any, where: str) -> Any:
    """Dataclass from a mapping, rejecting unknown keys with the list of known ones."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    reject_unknown_fields(cls, data, "key(s)", where)
    hints = typing.get_type_hints(cls)
    return cls(**{key: _coerce(value, hints[key], f"{where}.{key}") for key, value in data.items()})


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """YAML reads `5e-5` as a string (no dot): turn such strings into the field's number type."""
    if not isinstance(value, str):
        if isinstance(value, int) and not isinstance(value, bool) and float in _hint_types(hint) and int not in _hint_types(hint):
            return float(value)
        return value
    for number_type in (int, float):
        if number_type in _hint_types(hint):
            try:
                return number_type(value)
            except ValueError:
                continue
    if _hint_types(hint) & {int, float} and str not in _hint_types(hint) and Any not in _hint_types(hint):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    return value


def _hint_types(hint: Any) -> set:
    args = typing.get_args(hint)
    return set(args) if args else {hint}


def recipe_from_dict(data: Mapping[str, Any]) -> Recipe:
    data = dict(data)
    for key in ("name", "model", "stages"):
        if key not in data:
            raise ConfigError(f"recipe is missing '{key}'")
    if not isinstance(data["stages"], list) or not data["stages"]:
        raise ConfigError("recipe 'stages' must be a non-empty list")
    stages = []
    for index, raw in enumerate(data["stages"]):
        raw = dict(raw)
        where = f"stages[{index}]"
        loss = raw.get("loss", {})
        raw["loss"] = _build(options_class(loss, f"{where}.loss"), loss, f"{where}.loss")
        raw["temperature"] = _build(TemperatureSpec, raw.get("temperature", {}), f"{where}.temperature")
        if raw.get("trainable") is not None:
            raw["trainable"] = _build(TrainableSpec, raw["trainable"], f"{where}.trainable")
            _warn_unused_lora_options(data["stages"][index]["trainable"], raw["trainable"], f"{where}.trainable")
        raw.setdefault("name", f"stage{index}")
        stages.append(_build(StageSpec, raw, where))
    data["stages"] = stages
    raw_trainable = data.get("trainable") or {}
    data["trainable"] = _build(TrainableSpec, raw_trainable, "trainable")
    _warn_unused_lora_options(raw_trainable, data["trainable"], "trainable")
    if raw_trainable and all(stage.trainable is not None for stage in stages):
        logger.warning("the recipe-level `trainable` is unused: every stage sets its own (set "
                       "stages.*.trainable.<key> instead, e.g. --set stages.*.trainable.mode=full)")
    recipe = _build(Recipe, data, "recipe")
    validate(recipe)
    return recipe


LORA_OPTIONS = ("r", "alpha", "dropout", "target_modules")


def _warn_unused_lora_options(raw: Any, spec: TrainableSpec, where: str) -> None:
    """LoRA options given with full fine-tuning change nothing: said, not silently ignored."""
    given = [key for key in LORA_OPTIONS if isinstance(raw, Mapping) and key in raw]
    if spec.mode == "full" and given:
        logger.warning("%s: %s %s LoRA option(s), unused with mode: full", where, ", ".join(given),
                       "is a" if len(given) == 1 else "are")


def learning_notes(recipe: Recipe) -> list[str]:
    """Warnings about a recipe that will run but cannot learn as set (logged before training starts)."""
    notes = []
    random_model = str(recipe.model).startswith("tiny")
    full_before = False
    for stage in recipe.stages:
        spec = recipe.stage_trainable(stage)
        full_before = (full_before and stage.from_previous) or spec.mode == "full"
        if random_model and spec.mode in ("lora", "dora") and not full_before:
            notes.append(
                f"stage '{stage.name}' trains {spec.mode.upper()} adapters on a randomly initialised model "
                f"({recipe.model}): adapters adjust what pretrained weights already know, so on random weights the "
                "loss stays near ln(batch size) and retrieval stays at chance. To learn with a tiny model, train "
                "every weight: --set trainable.mode=full --set trainable.freeze_vision=false (as recipes/demo.yaml "
                "does; stages with their own `trainable`: stages.N.trainable...); LoRA needs a pretrained `model`.")
    return notes


def validate(recipe: Recipe) -> None:
    if recipe.profile is not None:
        get_profile(recipe.profile)  # an unknown name fails here, listing the known ones
    names = [stage.name for stage in recipe.stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"stage names must be unique, got {names}")
    for spec in [recipe.trainable] + [s.trainable for s in recipe.stages if s.trainable]:
        if spec.mode not in TRAIN_MODES:
            raise ConfigError(f"trainable.mode {spec.mode!r} is not one of {TRAIN_MODES}")
    _validate_distributed(recipe)
    for stage in recipe.stages:
        where = f"stage '{stage.name}'"
        if stage.schedule not in SCHEDULES:
            raise ConfigError(f"{where}: schedule {stage.schedule!r} is not one of {SCHEDULES}")
        if not stage.max_steps and not stage.epochs:
            raise ConfigError(f"{where}: set max_steps or epochs")
        if stage.batching not in BATCHING:
            raise ConfigError(f"{where}: batching {stage.batching!r} is not one of {BATCHING}")
        if stage.batching == "mixed" and stage.loss.source_batches:
            raise ConfigError(f"{where}: a {stage.loss.kind} stage reads each batch's source; use batching: source")
        if stage.batch_size < 2:
            raise ConfigError(f"{where}: batch_size must be at least 2 (in-batch negatives)")
        if stage.grad_cache_chunk is not None and stage.grad_cache_chunk < 1:
            raise ConfigError(f"{where}: grad_cache_chunk must be a positive integer or null")
        if stage.lr <= 0:
            raise ConfigError(f"{where}: lr must be positive")
        if stage.mine is not None:
            from ..mining.stage import mining_options

            mining_options(stage.mine, where)
            if not stage.loss.uses_negatives():
                raise ConfigError(f"{where}: mined negatives are used by a re-ranker stage or a contrastive loss with "
                                  "num_negatives >= 1; set loss.num_negatives or remove `mine`")
        stage.loss.validate(recipe, stage, where)


def _validate_distributed(recipe: Recipe) -> None:
    if recipe.distributed not in DISTRIBUTED:
        raise ConfigError(f"distributed {recipe.distributed!r} is not one of {DISTRIBUTED}")
    if recipe.deepspeed and recipe.distributed != "deepspeed":
        raise ConfigError("the recipe sets `deepspeed` options but distributed is not deepspeed")
    if recipe.distributed == "deepspeed":
        _validate_deepspeed(recipe)
    if recipe.distributed == "ddp":
        return
    for stage in recipe.stages:  # FSDP and DeepSpeed wrap the embedding objectives only (ddp_only: False)
        if recipe.distributed == "fsdp" and recipe.stage_trainable(stage).mode != "full":
            raise ConfigError(f"stage '{stage.name}': distributed: fsdp shards full fine-tuning; LoRA/DoRA "
                              "adapters are small enough to replicate, use distributed: ddp")
        if stage.loss.ddp_only:
            raise ConfigError(f"stage '{stage.name}': a {stage.loss.kind} stage runs with distributed: ddp only (it is "
                              f"not checked under {recipe.distributed}); set distributed: ddp")


def _validate_deepspeed(recipe: Recipe) -> None:
    from .zero import ZERO_STAGES, zero_stage

    if not isinstance(recipe.deepspeed, dict):
        raise ConfigError("`deepspeed` must be a mapping of DeepSpeed config entries")
    if zero_stage(recipe.deepspeed) not in ZERO_STAGES:
        raise ConfigError(f"DeepSpeed ZeRO stage {zero_stage(recipe.deepspeed)} is not offered; use "
                          "zero_optimization.stage 1, or distributed: fsdp to shard gradients and parameters")


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value {value!r} is not valid YAML ({exc})") from exc
    return key.strip().split("."), parsed


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.0.c=value` overrides to a raw recipe mapping (lists indexed by number, or `*` for all)."""
    data = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        _set_path(data, path, value, text)
    return data


def _set_path(node: Any, path: list[str], value: Any, text: str) -> None:
    head, rest = path[0], path[1:]
    if isinstance(node, list):
        targets = range(len(node)) if head == "*" else [_list_index(node, head, text)]
        for index in targets:
            if rest:
                _set_path(node[index], rest, value, text)
            else:
                node[index] = value
        return
    if not isinstance(node, dict):
        raise ConfigError(f"--set {text}: cannot descend into a {type(node).__name__}")
    if not rest:
        node[head] = value
        return
    if head not in node or node[head] is None:
        node[head] = {}
    _set_path(node[head], rest, value, text)


def _list_index(node: list, head: str, text: str) -> int:
    try:
        index = int(head)
    except ValueError as exc:
        raise ConfigError(f"--set {text}: '{head}' must be a list index") from exc
    if not -len(node) <= index < len(node):
        raise ConfigError(f"--set {text}: index {index} out of range (list has {len(node)} entries)")
    return index


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file '{path}' not found (looked for '{os.path.abspath(path)}')")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe '{path}' is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"recipe '{path}' must be a mapping")
    anchored = _anchor_stage_data(raw, Path(os.path.abspath(path)).parent)
    overridden = apply_overrides(anchored, overrides or [])
    _anchor_stage_data(overridden, Path.cwd(), changed_from=anchored)
    return recipe_from_dict(overridden)


def _anchor_stage_data(raw: dict[str, Any], folder: Path, changed_from: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record in each stage the folder its `data` resolves against (in place; returns `raw`).

    Without `changed_from`: every stage that does not name its own `data_dir` gets `folder` (the recipe's).
    With it: only stages whose `data` differs from `changed_from`'s (an override) and whose `data_dir` was not
    overridden too get `folder` (the working directory).
    """
    stages = raw.get("stages")
    if not isinstance(stages, list):
        return raw
    before = changed_from.get("stages") if changed_from is not None else None
    for index, stage in enumerate(stages):
        if not isinstance(stage, dict):
            continue
        if before is None:
            stage.setdefault("data_dir", str(folder))
            continue
        old = before[index] if isinstance(before, list) and index < len(before) and isinstance(before[index], dict) else {}
        if stage.get("data") != old.get("data") and stage.get("data_dir") == old.get("data_dir"):
            stage["data_dir"] = str(folder)
    return raw


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
