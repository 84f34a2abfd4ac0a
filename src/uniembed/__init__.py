"""uniembed: universal multimodal embedding models (text, images, video, documents) on multimodal LLMs."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConfigError, InputError
from .inputs import IMAGE, TEXT, VIDEO, Item, as_item, as_items
from .media import MediaLimits
from .version import __version__

_LAZY = {
    "Embedder": ("uniembed.models.embedder", "Embedder"),
    "EmbeddingConfig": ("uniembed.models.config", "EmbeddingConfig"),
    "Reranker": ("uniembed.models.reranker", "Reranker"),
}

if TYPE_CHECKING:  # pragma: no cover
    from .models.config import EmbeddingConfig
    from .models.embedder import Embedder
    from .models.reranker import Reranker


def __getattr__(name: str) -> Any:
    """Heavy modules (torch, transformers) load on first use, so `import uniembed` stays fast."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'uniembed' has no attribute {name!r}")


__all__ = ["Item", "InputError", "ConfigError", "MediaLimits", "Embedder", "EmbeddingConfig", "Reranker", "as_item", "as_items",
           "TEXT", "IMAGE", "VIDEO", "__version__"]
