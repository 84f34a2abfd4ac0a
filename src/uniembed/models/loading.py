"""Loading a model: a checkpoint directory (a LoRA adapter attached to its base) or a `tiny[:family][:size[:seed]]`
spec, its embedding config (saved, profile or defaults), its dtype and its device. `Embedder.from_pretrained` and
`Reranker.from_pretrained` are the doors; this module holds what both need."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .backbones import Backbone, backbone_for
from .config import EmbeddingConfig, SavedModelInfo
from .profile import Profile, detect_profile, get_profile

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def tiny_spec(spec: Any) -> tuple[str, str, int] | None:
    """(family, size, seed) when `spec` is a `tiny[:family][:size[:seed]]` model spec, else None (a directory:
    one named `tiny_model` is a checkpoint, not a tiny spec)."""
    if not isinstance(spec, str) or not (spec == "tiny" or spec.startswith("tiny:")):
        return None
    from .tiny import parse_tiny_spec

    return parse_tiny_spec(spec)


def resolve_device(device: str | torch.device) -> str | torch.device:
    """`"auto"`: CUDA when present, else the CPU; any other device as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_profile_config(directory: Path, backbone: Backbone, saved: EmbeddingConfig | None,
                           default: EmbeddingConfig, profile: str | Profile | None,
                           overrides: dict[str, Any]) -> EmbeddingConfig:
    """The embedding config a checkpoint loads with: an explicit profile over the defaults; else its saved
    `uniembed.json`; else the profile its name identifies (logged); else the defaults. `overrides` last."""
    model_type = str(getattr(getattr(backbone.hf_model, "config", None), "model_type", ""))
    if profile == "none":
        config = saved or default.replace(profile=None)
    elif profile is not None:
        chosen = get_profile(profile)
        if not chosen.applies_to(model_type):
            raise ConfigError(f"profile {chosen.name!r} is for {list(chosen.backbones)} checkpoints, but "
                              f"'{directory}' is a {model_type!r} model; pick a profile from `uniembed profiles`")
        config = chosen.config(default)
    elif saved is not None:
        config = saved
    else:
        found = detect_profile(directory, model_type)
        config = found.config(default) if found else default
        prompts, default_prompt = sentence_transformers_prompts(directory)
        if prompts:
            config = config.replace(prompts={**config.prompts, **prompts}, default_prompt_name=default_prompt)
        if found:
            logger.info("uniembed: '%s' looks like a %s checkpoint; embedding under profile '%s' "
                        "(pass profile='none' for the library defaults)", directory, found.family, found.name)
    return config.replace(**overrides) if overrides else config


def load_backbone(path: str | os.PathLike, dtype: str | torch.dtype | None = None,
                  attn_implementation: str | None = None) -> tuple[Backbone, SavedModelInfo | None]:
    """The VLM of a local checkpoint directory (a LoRA adapter attached to its base) and its `uniembed.json`."""
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"model directory '{directory}' not found (uniembed loads local checkpoints only; "
                                "download the model first, e.g. with `huggingface-cli download`)")
    info = SavedModelInfo.load(directory)
    adapter = (directory / "adapter_config.json").exists()
    weights_dir = Path(_adapter_base(directory, info)) if adapter else directory
    config_file = weights_dir / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"'{config_file}' missing: not a Hugging Face checkpoint directory")
    model_type = json.loads(config_file.read_text()).get("model_type", "")
    backbone = backbone_for(model_type).load(weights_dir, resolve_dtype(dtype), attn_implementation)
    if adapter:
        from peft import PeftModel

        backbone.model = PeftModel.from_pretrained(backbone.model, str(directory))
    return backbone, info


def _adapter_base(directory: Path, info: SavedModelInfo | None) -> str:
    if info and info.base_model:
        return info.base_model
    adapter_config = json.loads((directory / "adapter_config.json").read_text())
    base = adapter_config.get("base_model_name_or_path")
    if not base or not Path(base).is_dir():
        raise FileNotFoundError(f"LoRA adapter in '{directory}' refers to base model '{base}', which is not a local "
                                "directory; set base_model in uniembed.json to the base checkpoint's path")
    return base


def sentence_transformers_prompts(directory: str | Path) -> tuple[dict[str, str], str | None]:
    """The named prompts (and default prompt name) of a folder laid out for sentence-transformers
    (`config_sentence_transformers.json`, as Qwen3-VL-Embedding's hub folder has); empty when there are none."""
    path = Path(directory) / "config_sentence_transformers.json"
    payload = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    prompts = {str(k): str(v) for k, v in (payload.get("prompts") or {}).items()}
    return prompts, payload.get("default_prompt_name") if prompts else None


def existing_base_path(backbone: Backbone) -> str:
    """The base checkpoint directory an adapter-only save refers to (it must be on disk)."""
    base = backbone.name_or_path
    if not Path(base).is_dir():
        raise ConfigError(f"cannot save an adapter-only checkpoint: base model '{base}' is not on disk; "
                          "save with merge_lora=True")
    return str(Path(base).resolve())


def merged_copy(peft_model: Any) -> Any:
    """The base model with LoRA weights folded in, leaving the training model untouched."""
    import copy

    return copy.deepcopy(peft_model).merge_and_unload()
