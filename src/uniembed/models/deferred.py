"""A model built only when it must run: a warm evaluation (every vector cached) loads no weights at all.

The embedding cache is keyed by the model id, which is the embedding config plus a digest of the weights
(`config.model_fingerprint`). Computing that digest needs the weights; so the first run records it, with the
config, in the cache directory (`model-ids.json`), under a key that names what was loaded without opening it:
the model spec, the `dtype` and `profile` asked for, uniembed's and torch's versions and, for a checkpoint
directory (and a LoRA adapter's base), the name, size and modification time of each of its files. A later run
with the same key gets a `DeferredEmbedder`: it has the model id and config at once and builds the model (and
imports torch and transformers) on the first call that needs it, e.g. `encode` of an item not in the cache.
A changed file, spec, dtype, profile or version makes another key: the model is loaded and recorded again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..version import __version__
from .config import EmbeddingConfig, model_fingerprint

if TYPE_CHECKING:
    from .embedder import Embedder

log = logging.getLogger(__name__)
RECORD_FILE = "model-ids.json"


def load_key(spec: str, dtype: str | None = None, profile: str | None = None) -> str:
    """What identifies the weights and config `Embedder.from_pretrained(spec, dtype=, profile=)` would load,
    read from file metadata only (no file is opened)."""
    parts: list[Any] = [spec, dtype, profile, __version__, _version("torch"), _version("transformers")]
    directory = Path(spec)
    if directory.is_dir():
        parts.append(_files(directory))
        if (directory / "adapter_config.json").exists():
            parts.append(_files(_adapter_base(directory)))
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


class DeferredEmbedder:
    """Stands in for an `Embedder` whose model id and config are known: `model_id`, `config`, `source`,
    `multi_vector_dimension` and `with_options` need no model; any other attribute builds it (once, shared by
    every `with_options` copy)."""

    decodes_in_background = True  # as `Embedder`: its encode decodes media in its own threads

    def __init__(self, build: Callable[[], "Embedder"], config: EmbeddingConfig, weights: str, source: str,
                 _built: dict | None = None) -> None:
        self.config = config
        self.source = source
        self._build = build
        self._weights = weights
        self._built = _built if _built is not None else {}  # {"base": Embedder} once built, shared with copies

    @property
    def model_id(self) -> str:
        return model_fingerprint(self.config, self._weights)

    @property
    def multi_vector_dimension(self) -> int | None:
        """As `Embedder.multi_vector_dimension`: read from the config (a warm multi-vector eval builds nothing)."""
        return self.config.multi_vector_dim

    def with_options(self, **overrides: Any) -> "DeferredEmbedder":
        """The same (not yet built) model embedding under `overrides` of its config."""
        return DeferredEmbedder(self._build, self.config.replace(**overrides), self._weights, self.source, self._built)

    def built(self) -> "Embedder":
        """The real model under this config, built on first use."""
        if "base" not in self._built:
            log.info("building model %s (an item is not in the embedding cache)", self.source)
            self._built["base"] = self._build()
        base = self._built["base"]
        if base.config == self.config:
            return base
        key = json.dumps(self.config.to_dict(), sort_keys=True, default=str)
        if key not in self._built:
            self._built[key] = base.with_options(**{name: getattr(self.config, name) for name in self.config.to_dict()})
        return self._built[key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.built(), name)


def deferred_model(spec: str, record_dir: str | os.PathLike, load: Callable[[], "Embedder"], *,
                   dtype: str | None = None, profile: str | None = None) -> "Embedder | DeferredEmbedder":
    """A `DeferredEmbedder` when `record_dir` recorded this model's id, else the model `load()` builds now
    (its id then recorded there for the next run)."""
    key = load_key(spec, dtype, profile)
    path = Path(record_dir) / RECORD_FILE
    records = _read(path)
    found = records.get(key)
    if found is not None:
        return DeferredEmbedder(load, EmbeddingConfig.from_dict(found["config"]), found["weights"], found["source"])
    model = load()
    records[key] = {"spec": spec, "source": model.source, "weights": model.weights_fingerprint(),
                    "config": model.config.to_dict()}
    _write(path, records)
    return model


def _files(directory: Path) -> list[tuple[str, int, int]]:
    return sorted((entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
                  for entry in os.scandir(directory) if entry.is_file())


def _adapter_base(directory: Path) -> Path:
    for name in ("uniembed.json", "adapter_config.json"):
        try:
            data = json.loads((directory / name).read_text())
        except (OSError, ValueError):
            continue
        base = data.get("base_model") or data.get("base_model_name_or_path")
        if base and Path(base).is_dir():
            return Path(base)
    return directory


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: the model is loaded and recorded again
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, records: dict) -> None:
    """Atomically (the ranks of a job, or two jobs, may share the cache directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(records, indent=1, sort_keys=True))
    os.replace(temporary, path)
