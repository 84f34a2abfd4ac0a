"""Shared by the tests that load uniembed's exports in sentence-transformers (the real package)."""
from __future__ import annotations

import numpy as np
import pytest


def torchvision_problem() -> str | None:
    """Why torchvision does not import beside this torch (transformers' Qwen-VL processors need it), or None."""
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError, OSError) as exc:  # RuntimeError: "operator torchvision::nms does not exist"
        return f"no torchvision that imports beside this torch ({type(exc).__name__}: {str(exc)[:80]})"
    return None


needs_torchvision = pytest.mark.skipif(torchvision_problem() is not None, reason=str(torchvision_problem()))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a / np.linalg.norm(a) * b / np.linalg.norm(b)).sum())
