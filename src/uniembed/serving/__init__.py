"""The embeddings server: OpenAI-compatible, dynamically batched, mixed-modality (`uniembed serve`)."""
from __future__ import annotations

from .app import create_app
from .config import ServerConfig
from .rerank import Reranker
from .search import SearchService, read_metadata, write_metadata

__all__ = ["create_app", "ServerConfig", "Reranker", "SearchService", "read_metadata", "write_metadata"]
