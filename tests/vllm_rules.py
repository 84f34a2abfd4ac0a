"""vLLM's rules for reading an exported folder, written down from its sources (no vLLM import: it does not install
on these CPU machines). Sources: vllm-project/vllm@main
- vllm/transformers_utils/config.py `get_pooling_config`: reads `modules.json`; the Pooling module is the entry
  whose type == "sentence_transformers.models.Pooling", Normalize the one == "sentence_transformers.models.Normalize"
  (normalize -> use_activation); from `<pooling path>/config.json` every key whose value is `True` goes through
  `parse_pooling_type` (strip "pooling_mode_", keep the text before the first "_", "lasttoken" -> "last",
  upper-case); it becomes seq_pooling_type when in SEQ_POOLING_TYPES;
- vllm/config/pooler.py SEQ_POOLING_TYPES = ("CLS", "LAST", "MEAN") (sequence pooling a `--runner pooling`
  embedding model takes);
- docs/models/pooling_models/: `*ForConditionalGeneration` checkpoints are converted to embedding models by
  `--runner pooling` (architecture taken from config.json `architectures`); `matryoshka_dimensions` in config.json
  enables the request's `dimensions` field; the chat template renders `messages` of a /v1/embeddings request.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SEQ_POOLING_TYPES = ("CLS", "LAST", "MEAN")
EMBEDDING_ARCHITECTURES = ("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration",
                           "Qwen3VLForConditionalGeneration")


def parse_pooling_type(name: str) -> str:
    if "pooling_mode_" in name:
        name = name.replace("pooling_mode_", "")
    if "_" in name:
        name = name.split("_", 1)[0]
    if "lasttoken" in name:
        name = "last"
    return name.upper()


def pooling_config(directory: Path) -> dict[str, Any] | None:
    """What vLLM's get_pooling_config returns for `directory`."""
    modules_file = directory / "modules.json"
    if not modules_file.exists():
        return None
    modules = json.loads(modules_file.read_text())
    pooling = next((m for m in modules if m["type"] == "sentence_transformers.models.Pooling"), None)
    normalize = any(m["type"] == "sentence_transformers.models.Normalize" for m in modules)
    if pooling is None:
        return None
    pooling_file = directory / pooling["path"] / "config.json"
    config: dict[str, Any] = {"use_activation": normalize}
    for key, value in (json.loads(pooling_file.read_text()) if pooling_file.exists() else {}).items():
        if value is True and parse_pooling_type(key) in SEQ_POOLING_TYPES:
            config["seq_pooling_type"] = parse_pooling_type(key)
    return config
