"""What trains: LoRA / DoRA adapters via peft, or full fine-tuning, with the vision tower frozen or not."""
from __future__ import annotations

import logging
from typing import Any

from torch import nn

from ..errors import ConfigError
from .recipe import TrainableSpec

logger = logging.getLogger(__name__)
VISION_PREFIXES = ("visual", "vision_tower", "vision_model", "multi_modal_projector")  # LLaVA: projector with the tower


def is_vision(name: str) -> bool:
    """Whether a parameter or module name lies in the vision tower."""
    return any(part in VISION_PREFIXES for part in name.split("."))


def apply_trainable(hf_model: nn.Module, spec: TrainableSpec) -> nn.Module:
    """Return the model to train (a PeftModel for LoRA/DoRA) with requires_grad set per `spec`."""
    if spec.mode in ("lora", "dora"):
        from peft import LoraConfig, get_peft_model

        check_lora_targets(hf_model, spec)
        # targets restricted to the language model unless the vision tower is unfrozen
        pattern = None
        if vision_frozen(spec):
            pattern = r"^(?!.*(?:" + "|".join(VISION_PREFIXES) + r")).*\.(?:" + "|".join(spec.target_modules) + r")$"
        config = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                            target_modules=pattern or list(spec.target_modules), use_dora=spec.mode == "dora")
        model = get_peft_model(hf_model, config)
        return model
    for name, parameter in hf_model.named_parameters():
        frozen = vision_frozen(spec) and is_vision(name)
        parameter.requires_grad_(not frozen)
    return hf_model


def vision_frozen(spec: TrainableSpec) -> bool:
    return spec.freeze_vision or spec.text_only


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)  # peft's rule for a list of target names


def check_lora_targets(hf_model: nn.Module, spec: TrainableSpec) -> None:
    """Every LoRA target must match a module the adapters may train; a target matching nothing is refused
    (peft itself is silent unless no target matches at all). With the vision tower unfrozen but no target
    inside it, the tower still trains nothing: said in a warning."""
    names = [name for name, _ in hf_model.named_modules() if name]
    language = {t: sum(_matches(n, t) and not is_vision(n) for n in names) for t in spec.target_modules}
    vision = {t: sum(_matches(n, t) and is_vision(n) for n in names) for t in spec.target_modules}
    usable = {t: language[t] + (0 if vision_frozen(spec) else vision[t]) for t in spec.target_modules}
    unused = [t for t in spec.target_modules if not usable[t]]
    if unused:
        only_vision = [t for t in unused if vision[t]]
        reason = (f" {only_vision} exist only in the vision tower, which is frozen (trainable.freeze_vision: "
                  f"{str(spec.freeze_vision).lower()}, text_only: {str(spec.text_only).lower()}): set "
                  "trainable.freeze_vision=false to adapt it, or remove them;" if only_vision else "")
        leaves = sorted({n.split(".")[-1] for n in names if not is_vision(n) and not n.split(".")[-1].isdigit()})
        raise ConfigError(f"LoRA target module(s) {unused} match no module the adapters can train;{reason} "
                          f"language-model module names: {leaves[:24]}")
    if not vision_frozen(spec) and not any(vision.values()):
        leaves = sorted({n.split(".")[-1] for n in names if is_vision(n) and not n.split(".")[-1].isdigit()})
        logger.warning("trainable.freeze_vision is false, but no LoRA target is a vision-tower module, so the vision "
                       "tower trains nothing; its module names include %s (add some to trainable.target_modules)",
                       leaves[:16])


def describe_trainable(module: nn.Module, spec: TrainableSpec) -> str:
    """One line for the run's log: what trains in the language model and in the vision tower."""
    counts = {"language model": [0, 0], "vision tower": [0, 0]}
    for name, parameter in module.named_parameters():
        part = counts["vision tower" if is_vision(name) else "language model"]
        part[0] += parameter.numel()
        part[1] += parameter.numel() if parameter.requires_grad else 0
    how = "full fine-tuning" if spec.mode == "full" else f"{spec.mode.upper()} r={spec.r} alpha={spec.alpha} on {spec.target_modules}"
    vision_trains = counts["vision tower"][1] > 0
    vision = ("vision tower trains" if vision_trains else
              f"vision tower frozen (trainable.freeze_vision={str(spec.freeze_vision).lower()}"
              f"{', text_only=true' if spec.text_only else ''})")
    parts = ", ".join(f"{part} {trained:,} of {total:,}" for part, (total, trained) in counts.items())
    return f"{how}; {vision}; trainable parameters: {parts}"


def trainable_state(module: nn.Module) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}


def load_trainable_state(module: nn.Module, state: dict[str, Any]) -> None:
    parameters = dict(module.named_parameters())
    missing = [name for name, p in parameters.items() if p.requires_grad and name not in state]
    if missing:
        raise ConfigError(f"checkpoint lacks {len(missing)} trainable tensors (e.g. {missing[:3]}); "
                          "was it written by a different recipe?")
    for name, value in state.items():
        parameters[name].data.copy_(value)
