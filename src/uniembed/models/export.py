"""`uniembed export`: a loaded model written as a self-contained folder that transformers, sentence-transformers
and vLLM load as they are (the files themselves are written by `models/interop.py`), with the training records
its model card reads."""
from __future__ import annotations

import shutil
from pathlib import Path

from .embedder import Embedder
from .interop import ensure_empty, exportable

TRAINING_RECORDS = ("recipe.yaml", "training_state.json")


def export_model(spec: str, out: str | Path, overwrite: bool = False, keep_adapter: bool = False,
                 profile: str | None = None, matryoshka_dimensions: list[int] | None = None) -> list[str]:
    """`uniembed export`: load `spec` (a directory or a tiny spec), write a self-contained folder `out` with the
    adapter merged (and kept in `out/adapter/` with `keep_adapter`), and the training records the model card
    reads. Returns the options sentence-transformers / vLLM cannot reproduce (see `exportable`)."""
    target = Path(out)
    ensure_empty(target, overwrite)
    embedder = Embedder.from_pretrained(spec, **({"profile": profile} if profile else {}))
    target.mkdir(parents=True, exist_ok=True)
    source = Path(spec)
    if source.is_dir():
        for name in TRAINING_RECORDS:
            if (source / name).exists():
                shutil.copy2(source / name, target / name)
        for report in source.glob("eval*.json"):
            shutil.copy2(report, target / report.name)
    embedder.save_pretrained(target, keep_adapter=keep_adapter, matryoshka_dimensions=matryoshka_dimensions)
    return exportable(embedder.config, str(embedder.backbone.hf_model.config.model_type))
