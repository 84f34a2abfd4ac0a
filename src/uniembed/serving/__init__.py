"""The embeddings server: OpenAI-compatible, dynamically batched, mixed-modality (`uniembed serve`).

Names load on first use: `ServerConfig`, `SearchService` and the media policy need no web framework, while
`create_app` needs the `serve` extra (FastAPI, uvicorn, prometheus-client) and says so when it is missing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..extras import import_optional

_LAZY = {"create_app": "app", "ServerConfig": "config", "Reranker": "rerank", "SearchService": "search",
         "read_metadata": "search", "write_metadata": "search"}

if TYPE_CHECKING:  # pragma: no cover
    from .app import create_app
    from .config import ServerConfig
    from .rerank import Reranker
    from .search import SearchService, read_metadata, write_metadata


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_optional(f"{__name__}.{_LAZY[name]}", "the uniembed server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app", "ServerConfig", "Reranker", "SearchService", "read_metadata", "write_metadata"]
