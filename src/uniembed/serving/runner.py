"""`ModelRunner`: one model batch of already-decoded items -> embeddings and per-item token counts.

Runs in the server's model threads (one per batching lane: short items, and long items when the server
has a long lane); the module is in eval mode while any batch runs and back in its own mode when none does.
It follows `Embedder.encode` step for step (decode, collate, forward), so a served embedding equals
`Embedder.encode` of the same item, and it reads the usage
(text and visual tokens per item) from the same collated batch instead of tokenising twice. Items are
decoded and preprocessed one at a time and their full-size pixels dropped at once, so a batch holds
at most one decoded medium at full size (plus every item's model-sized pixels).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..inputs import Item
from ..models.backbones.base import DecodedItem

TEMPLATE_OVERHEAD_TOKENS = 24  # chat-template tokens around every item, for batch budgeting
LARGE_MEDIUM_PIXELS = 8_000_000  # after decoding this much, hand the freed pages back to the OS


def release_freed_memory() -> None:
    """Return freed heap pages to the OS (glibc `malloc_trim`), so RSS falls after a large decode
    instead of staying at its peak; a no-op elsewhere."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


@dataclass
class BatchOutput:
    vectors: np.ndarray  # N x D float32
    text_tokens: np.ndarray  # N int
    visual_tokens: np.ndarray  # N int


class ModelRunner:
    """Encodes one batch with an `Embedder`; counts calls so tests and metrics can see batching."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls = 0
        self._lock = threading.Lock()  # guards `calls` and the eval-mode switch across the model threads
        self._running = 0
        self._was_training = False

    @property
    def dimension(self) -> int:
        return int(self.model.dimension)

    def cost(self, item: Item) -> int:
        """Estimated sequence length (text + visual tokens) used to fill batches up to the token budget."""
        length = min(int(self.model.estimate_tokens(item)), int(self.model.config.max_length))
        return length + TEMPLATE_OVERHEAD_TOKENS  # text past max_length is truncated: it costs no more

    def resolve_instruction(self, items: Sequence[Item], input_type: str | None) -> list[Item]:
        """Apply the model's named prompt for `input_type` (query/document) as `encode_query` would;
        items with their own instruction keep it; without `input_type` the model's default prompt applies."""
        prompt_name = input_type if input_type in self.model.config.prompts else None
        return self.model.resolve_items(items, prompt_name=prompt_name)

    def prepare(self, item: Item, position: int | None = None) -> DecodedItem:
        """Decode, tokenise and preprocess one item, then drop its full-size pixels (the prepared
        tokens hold the model-sized ones)."""
        prepared = self.model.prepare(item, position)
        pixels = sum(i.width * i.height for i in prepared.images) + sum(
            f.width * f.height for frames in prepared.videos for f in frames)
        prepared.images, prepared.videos = [], []
        if pixels >= LARGE_MEDIUM_PIXELS:
            release_freed_memory()
        return prepared

    def encode(self, items: Sequence[Item | DecodedItem]) -> BatchOutput:
        vectors, batch = self._forward(items, lambda module, batch: module(batch).float().cpu().numpy())
        return BatchOutput(vectors.astype(np.float32, copy=False), *_token_counts(batch))

    def encode_tokens(self, items: Sequence[Item | DecodedItem]) -> tuple[list[np.ndarray], BatchOutput]:
        """Late-interaction token embeddings of one batch (the kept tokens of `module.tokens`, as
        `Embedder.encode_multi` returns them) and its usage; the BatchOutput's `vectors` is empty."""
        (tokens, keep), batch = self._forward(items, lambda module, batch: module.tokens(batch))
        rows = [tokens[row][keep[row]].float().cpu().numpy() for row in range(len(items))]
        return rows, BatchOutput(np.zeros((len(items), 0), np.float32), *_token_counts(batch))

    def _forward(self, items: Sequence[Item | DecodedItem], run: Any) -> tuple[Any, dict]:
        """`run(module, batch)` on the collated batch, in eval mode without gradients; (its result, the batch)."""
        import torch

        model = self.model
        decoded = [item if isinstance(item, DecodedItem) else self.prepare(item, position)
                   for position, item in enumerate(items)]
        batch = model.collate(decoded)
        with self._lock:  # the first batch in switches to eval mode, the last one out restores the mode
            self.calls += 1
            if self._running == 0:
                self._was_training = model.module.training
                model.module.eval()
            self._running += 1
        try:
            with torch.inference_mode():
                return run(model.module, batch), batch
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    model.module.train(self._was_training)


def _token_counts(batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """(text, visual) tokens per item of a collated batch."""
    totals = batch["attention_mask"].sum(dim=1).cpu().numpy().astype(np.int64)
    visual = np.asarray(batch["visual_tokens_per_item"], dtype=np.int64)
    return totals - visual, visual
