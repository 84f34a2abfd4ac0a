"""mteb's encoder protocol over an `Embedder`, so MTEB/MIEB tasks run on uniembed models.

mteb calls `encode(dataloader, *, task_metadata, hf_split, hf_subset, prompt_type, **kwargs)`; each batch
is a dict of columns (`text`, `image` as PIL images, `video`), and a row with both text and image is one
fused input. `prompt_type` ("query" / "document", a string or mteb's PromptType enum) selects the model's
named prompt, most specific first: "<task name>-<prompt type>", "<task name>", "<prompt type>".

mteb (>= 2.26) reads a model's description from `model.mteb_model_meta` (a `mteb.ModelMeta`; `mteb.mock_run`
stops without it) and builds registered models with `mteb.get_model(name)`, which calls the meta's `loader`
as `loader(name, revision=..., device=..., **loader_kwargs)` (mteb 2.26.24 wheel: mteb/models/model_meta.py:249-279
the fields, :487-560 `load_model`; mteb/models/get_model_meta.py:116-141 `get_model`, :201 the registry look-up;
mteb/mocks/mock_run.py:211 `mock_run`). `MtebEncoder.mteb_model_meta` builds that meta on first use,
`load_mteb_encoder` is its loader and `register_with_mteb` adds it to mteb's registry.
mteb itself is not needed to import this module, only to build the meta.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

import numpy as np

from ..inputs import Item

COLUMNS = ("text", "image", "video")
MTEB_MODALITIES = ("text", "image", "audio", "video")  # mteb.types Modalities (mteb/types/_metadata.py:64)


class MtebEncoder:
    """Wrap an `Embedder` (or anything with `encode(items, batch_size, prompt_name)` and `config.prompts`)."""

    def __init__(self, embedder: Any, batch_size: int = 32, name: str | None = None, spec: str | None = None,
                 profile: str | None = None) -> None:
        self.embedder = embedder
        self.batch_size = batch_size
        self.model_name = name or getattr(embedder, "source", None) or "uniembed"
        source = getattr(embedder, "source", None)
        # what `load_mteb_encoder` rebuilds the model from: a given spec, else a checkpoint directory
        self.spec = spec or (source if isinstance(source, str) and os.path.isdir(source) else None)
        self.profile = profile or getattr(getattr(embedder, "config", None), "profile", None)  # rebuilt alike
        self._meta: Any = None

    @property
    def mteb_model_meta(self) -> Any:
        """mteb's `ModelMeta` of this model (built on first use; mteb's `load_model` sets its own copy)."""
        if self._meta is None:
            self._meta = mteb_model_meta(self)
        return self._meta

    @mteb_model_meta.setter
    def mteb_model_meta(self, meta: Any) -> None:
        self._meta = meta

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


def mteb_name(name: str) -> str:
    """An mteb model name ("org/name", which mteb requires): kept when it has a '/' and is no path, else
    "uniembed/<last part>"."""
    if "/" in name and not os.path.isabs(name) and not os.path.exists(name):
        return name
    return "uniembed/" + (os.path.basename(name.rstrip("/" + os.sep)) or "model")


def mteb_model_meta(encoder: MtebEncoder) -> Any:
    """The `mteb.ModelMeta` of a wrapped model: its name, dimension, size, token limit, modalities and cosine
    similarity, with `load_mteb_encoder` as the loader when the model can be rebuilt (`encoder.spec`)."""
    from mteb.models import ModelMeta

    embedder = encoder.embedder
    module = getattr(embedder, "module", None)
    config = getattr(embedder, "config", None)
    modalities = [m for m in getattr(embedder, "modalities", ("text",)) if m in MTEB_MODALITIES]
    return ModelMeta(
        loader=load_mteb_encoder if encoder.spec else None,
        loader_kwargs={"model": encoder.spec, "profile": encoder.profile, "batch_size": encoder.batch_size}
        if encoder.spec else {},
        name=mteb_name(encoder.model_name), revision=None, release_date=None, languages=None,
        n_parameters=sum(p.numel() for p in module.parameters()) if module is not None else None,
        memory_usage_mb=None, max_tokens=getattr(config, "max_length", None),
        embed_dim=int(getattr(embedder, "dimension", 0)) or None, license=None, open_weights=True,
        public_training_code=None, public_training_data=None, framework=["PyTorch"], similarity_fn_name="cosine",
        use_instructions=bool(getattr(config, "prompts", None)) or None, training_datasets=None,
        modalities=modalities,
    )


def load_mteb_encoder(model_name: str, revision: str | None = None, *, model: str | None = None,
                      profile: str | None = None, device: str | None = None, dtype: str | None = None,
                      batch_size: int = 32) -> MtebEncoder:
    """mteb's loader: an `MtebEncoder` over `model` (a checkpoint directory or a `tiny[...]` spec; default
    `model_name`) under `profile`. `revision` is accepted because mteb passes it; checkpoints have none."""
    from ..models.embedder import Embedder

    spec = model or model_name
    embedder = Embedder.from_pretrained(spec, device=device or "auto", dtype=dtype, **({"profile": profile} if profile else {}))
    return MtebEncoder(embedder, batch_size=batch_size, name=model_name, spec=spec, profile=profile)


def register_with_mteb(meta: Any) -> None:
    """Add a `ModelMeta` to mteb's registry, so `mteb.get_model(meta.name)` builds the model with its loader
    (mteb has no public registration call: the registry is `mteb.models.model_implementations.MODEL_REGISTRY`,
    read by `get_model_meta`, mteb/models/get_model_meta.py:201 in mteb 2.26.24)."""
    from mteb.models.model_implementations import MODEL_REGISTRY

    if meta.loader is None:
        raise ValueError(f"mteb model {meta.name!r} has no loader: build its MtebEncoder with spec= (a checkpoint "
                         "directory or tiny spec) so mteb can rebuild it")
    MODEL_REGISTRY[meta.name] = meta


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
