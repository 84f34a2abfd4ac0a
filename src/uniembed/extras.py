"""Optional features and the packages they need: `pip install uniembed` gives what `Embedder` needs to load and
encode; the server, FAISS, parquet data, training logs, the demo's plots and the text teacher are extras.

Modules import an extra's package only where the feature runs, through `import_optional` (or check up front
with `require`), so a missing package fails with the `pip install 'uniembed[...]'` that brings it.
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Iterable

# top-level module -> the smallest extra of pyproject.toml that installs it (eval, train and demo include index)
EXTRA_OF = {
    "fastapi": "serve", "starlette": "serve", "pydantic": "serve", "uvicorn": "serve", "prometheus_client": "serve",
    "faiss": "index",
    "pyarrow": "eval",
    "tensorboard": "train",
    "matplotlib": "demo",
    "sentence_transformers": "teacher",
}
SERVE = ("fastapi", "uvicorn", "prometheus_client")


class MissingExtra(ImportError):
    """An optional feature's package is not installed; the message names the `pip install` that fixes it."""


def missing_extra(packages: Iterable[str], purpose: str) -> MissingExtra:
    """The error for `purpose` lacking `packages` (top-level module names, each a key of EXTRA_OF)."""
    names = list(dict.fromkeys(packages))
    extras = ",".join(sorted({EXTRA_OF[name] for name in names}))
    which = f"{names[0]}, which is" if len(names) == 1 else f"{', '.join(names)}, which are"
    return MissingExtra(f"{purpose} needs {which} not installed: pip install 'uniembed[{extras}]'")


def import_optional(module: str, purpose: str) -> ModuleType:
    """Import `module` (e.g. "pyarrow.parquet") of an extra; a missing package raises `MissingExtra`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = (exc.name or module).split(".")[0]
        if top not in EXTRA_OF:
            raise  # not a missing extra (a broken install of something else): keep the original error
        raise missing_extra([top], purpose) from exc


def require(packages: Iterable[str], purpose: str) -> None:
    """Fail now, before any slow work, when one of `packages` (top-level names) cannot be found."""
    missing = []
    for name in packages:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise missing_extra(missing, purpose)
