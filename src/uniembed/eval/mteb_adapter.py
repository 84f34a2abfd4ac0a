"""mteb's encoder protocol over an `Embedder`, so MTEB/MIEB tasks run on uniembed models.

mteb calls `encode(dataloader, *, task_metadata, hf_split, hf_subset, prompt_type, **kwargs)`; each batch
is a dict of columns (`text`, `image` as PIL images, `video`), and a row with both text and image is one
fused input. `prompt_type` ("query" / "document", a string or mteb's PromptType enum) selects the model's
named prompt, most specific first: "<task name>-<prompt type>", "<task name>", "<prompt type>".
mteb itself is not needed to import this module.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from ..inputs import Item

COLUMNS = ("text", "image", "video")


class MtebEncoder:
    """Wrap an `Embedder` (or anything with `encode(items, batch_size, prompt_name)` and `config.prompts`)."""

    def __init__(self, embedder: Any, batch_size: int = 32, name: str | None = None) -> None:
        self.embedder = embedder
        self.batch_size = batch_size
        self.model_name = name or getattr(embedder, "source", None) or "uniembed"

    @property
    def prompts(self) -> Mapping[str, str]:
        config = getattr(self.embedder, "config", None)
        return getattr(config, "prompts", {}) or {}

    def prompt_name(self, task_name: str | None, prompt_type: Any) -> str | None:
        """The model's prompt for this task and side, or None to use the model's default."""
        kind = getattr(prompt_type, "value", prompt_type)
        for name in (f"{task_name}-{kind}" if task_name and kind else None, task_name, kind):
            if name and name in self.prompts:
                return name
        return None

    def encode(self, inputs: Iterable[Mapping[str, Any]], *, task_metadata: Any = None, hf_split: str | None = None,
               hf_subset: str | None = None, prompt_type: Any = None, **kwargs: Any) -> np.ndarray:
        items = [item for batch in inputs for item in batch_items(batch)]
        if not items:
            return np.zeros((0, int(getattr(self.embedder, "dimension", 0))), dtype=np.float32)
        task_name = getattr(task_metadata, "name", None) if task_metadata is not None else None
        prompt = self.prompt_name(task_name, prompt_type)
        batch_size = int(kwargs.get("batch_size", self.batch_size))
        if prompt is None:
            return np.asarray(self.embedder.encode(items, batch_size=batch_size), dtype=np.float32)
        return np.asarray(self.embedder.encode(items, batch_size=batch_size, prompt_name=prompt), dtype=np.float32)

    def similarity(self, a: Any, b: Any) -> np.ndarray:
        """Cosine similarity matrix (len(a) x len(b))."""
        a, b = _normalised(a), _normalised(b)
        return a @ b.T

    def similarity_pairwise(self, a: Any, b: Any) -> np.ndarray:
        """Cosine similarity of row i of `a` with row i of `b`."""
        return np.sum(_normalised(a) * _normalised(b), axis=1)


def batch_items(batch: Mapping[str, Any]) -> list[Item]:
    """Rows of one mteb batch as Items (text and image in the same row = one fused input)."""
    present = {column: list(batch[column]) for column in COLUMNS if column in batch and batch[column] is not None}
    if not present:
        raise ValueError(f"mteb batch has none of the columns {COLUMNS}; got {sorted(batch)}")
    sizes = {len(values) for values in present.values()}
    if len(sizes) != 1:
        raise ValueError(f"mteb batch columns have different lengths: { {k: len(v) for k, v in present.items()} }")
    items = []
    for row in range(sizes.pop()):
        text = present.get("text", [None] * (row + 1))[row]
        image = present.get("image", [None] * (row + 1))[row]
        video = present.get("video", [None] * (row + 1))[row]
        items.append(Item(text=text if text else None, image=image, video=video))
    return items


def _normalised(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    return x / np.clip(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12, None)
