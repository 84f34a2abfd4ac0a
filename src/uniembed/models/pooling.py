"""Pooling a sequence of hidden states to one vector, identically whatever the padding.

Padding positions are excluded with `masked_fill`/`where`, never by multiplying, so garbage (even NaN)
in padded rows can never leak into an embedding.
"""
from __future__ import annotations

import logging

import torch

from ..errors import ConfigError

logger = logging.getLogger(__name__)
_WARNED: set[tuple[int, tuple[int, ...]]] = set()


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row, for left and right padding alike."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return torch.where(attention_mask.bool(), positions, -1).amax(dim=1)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str,
         exclude_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pool `hidden` (B x L x D) to B x D.

    mode: `last`/`eos` take the last real token (for `eos` the template appended the end token);
    `mean`/`mean_no_instruction` average real tokens, the latter without positions in `exclude_mask`.
    """
    if mode in ("last", "eos"):
        index = last_token_index(attention_mask)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]
    if mode in ("mean", "mean_no_instruction"):
        keep = attention_mask.bool()
        if mode == "mean_no_instruction" and exclude_mask is not None:
            keep = keep & ~exclude_mask.bool()
            # an item that is all instruction still needs a vector: fall back to every real token
            empty = ~keep.any(dim=1, keepdim=True)
            keep = torch.where(empty, attention_mask.bool(), keep)
        summed = torch.where(keep.unsqueeze(-1), hidden, torch.zeros((), dtype=hidden.dtype, device=hidden.device)).sum(dim=1)
        count = keep.sum(dim=1, keepdim=True).clamp(min=1).to(hidden.dtype)
        return summed / count
    raise ValueError(f"unknown pooling {mode!r}")


def check_truncate_dim(truncate_dim: int | None, dimension: int, name: str = "truncate_dim",
                       trained: list[int] | None = None) -> None:
    """Refuse a Matryoshka width the model cannot give: below 1 or above its `dimension` (`name` is the
    option as the caller spelled it: `truncate_dim`, `--dimensions`, the API's `dimensions`). A width the model
    records it was not trained at (`trained`: `EmbeddingConfig.matryoshka_dims`) is allowed, with one warning
    per width and process."""
    if truncate_dim is not None and not 1 <= truncate_dim <= dimension:
        raise ConfigError(f"{name}={truncate_dim} is outside the model's 1..{dimension} dimensions; "
                          f"pass at most {dimension}, or leave it out for the full vector")
    key = (truncate_dim or 0, tuple(trained or ()))
    if trained and truncate_dim not in (None, dimension, *trained) and key not in _WARNED:
        _WARNED.add(key)
        logger.warning("%s=%d: the model was trained for Matryoshka widths %s; other widths may score lower",
                       name, truncate_dim, list(trained))
