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

        available = {name.split(".")[-1] for name, _ in hf_model.named_modules()}
        missing = [t for t in spec.target_modules if t not in available]
        if missing:
            raise ConfigError(f"LoRA target module(s) {missing} not found in the model; some names it has: "
                              f"{sorted(n for n in available if n)[:20]}")
        # targets restricted to the language model unless the vision tower is unfrozen
        pattern = None
        if spec.freeze_vision or spec.text_only:
            pattern = r"^(?!.*(?:" + "|".join(VISION_PREFIXES) + r")).*\.(?:" + "|".join(spec.target_modules) + r")$"
        config = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                            target_modules=pattern or list(spec.target_modules), use_dora=spec.mode == "dora")
        model = get_peft_model(hf_model, config)
        return model
    for name, parameter in hf_model.named_parameters():
        frozen = (spec.freeze_vision or spec.text_only) and is_vision(name)
        parameter.requires_grad_(not frozen)
    return hf_model


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
