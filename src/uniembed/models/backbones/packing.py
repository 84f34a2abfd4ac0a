"""Sequence packing for the language model: several items in one row, attention kept inside each item.

A collated batch is padded (B x L). Packing moves each item's real tokens, in batch order, into rows of
`capacity` tokens (next-fit: the order of visual tokens, which the vision features are scattered into,
stays the batch order), runs the language model on those rows with a block-diagonal mask (causal or full
inside each block) and each item's own positions (the collated ones, which already start at 0 per item,
1-D or M-RoPE), then scatters the hidden states back to the padded B x L layout, so pooling and every head
that reads `Backbone.hidden_states` see what the padded forward gives (to float rounding).

How the mask is given depends on the attention implementation:
- `sdpa` / `eager`: an additive R x 1 x C x C bias (`attention_bias` on per-token item ids; rows hold at most
  the batch's longest item, so no row costs more than a padded one);
- `flash_attention_*`: no mask, one row, and positions that restart per item, from which transformers derives
  `cu_seqlens` for the varlen kernel (causal only: flash has no bidirectional varlen path here);
- anything else (e.g. `flex_attention`, which takes its own block masks) cannot pack: `packing: on` names it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...errors import ConfigError
from ..config import EmbeddingConfig
from .base import attention_bias, attention_implementation, forward_mask

DENSE_IMPLEMENTATIONS = ("sdpa", "eager")
# `auto` packs a batch only when it saves at least this share of the padded token slots: below it the
# gather/scatter and the mask cost about what the saved rows would (benchmarks/results/packing_cpu.md)
AUTO_MIN_SAVING = 0.25


def packing_refusal(config: EmbeddingConfig, hf_config: Any) -> str | None:
    """Why this model and config cannot pack (None: it can)."""
    implementation = attention_implementation(hf_config)
    if implementation.startswith("flash"):
        if config.attention == "bidirectional":
            return (f"attn_implementation={implementation!r} packs causal attention only (varlen from positions); "
                    "use 'sdpa' or 'eager' for attention='bidirectional'")
        return None
    if implementation not in DENSE_IMPLEMENTATIONS:
        return (f"attn_implementation={implementation!r} does not take uniembed's block-diagonal mask; "
                f"use one of {DENSE_IMPLEMENTATIONS} or flash_attention_2")
    return None


@dataclass
class PackPlan:
    """Where each item's real tokens go: packed row-major slot of every real token of the padded batch."""

    rows: int
    capacity: int
    source: torch.Tensor  # flat indices into B*L of the real tokens, in batch (row-major) order
    target: torch.Tensor  # flat indices into rows*capacity, same order
    segments: torch.Tensor  # rows x capacity item ids (1-based; 0 = padding)
    ranks: torch.Tensor  # rows x capacity position of each token within its item (0 at padding)
    batch_shape: tuple[int, int]
    flash: bool

    def pack(self, values: torch.Tensor, dim: int = 0, fill: float | int = 0) -> torch.Tensor:
        """Dims `dim`, `dim + 1` (B, L) of `values` -> (rows, capacity): each real token moved to its packed slot
        (input ids and embeddings at dim 0, M-RoPE's 3 x B x L positions at dim 1)."""
        before, after = values.shape[:dim], values.shape[dim + 2:]
        flat = values.reshape(*before, -1, *after)
        out = flat.new_full((*before, self.rows * self.capacity, *after), fill)
        out = out.index_copy(dim, self.target, flat.index_select(dim, self.source))
        return out.reshape(*before, self.rows, self.capacity, *after)

    def unpack(self, hidden: torch.Tensor) -> torch.Tensor:
        """rows x capacity x H -> B x L x H, padding positions zero (pooling never reads them)."""
        flat = hidden.reshape(self.rows * self.capacity, -1)
        out = flat.new_zeros(self.batch_shape[0] * self.batch_shape[1], flat.shape[-1])
        out = out.index_copy(0, self.source, flat.index_select(0, self.target))
        return out.reshape(*self.batch_shape, -1)


def plan_packing(attention_mask: torch.Tensor, config: EmbeddingConfig, hf_config: Any) -> PackPlan | None:
    """The packing of this batch, or None when it runs padded (`packing: off`, nothing to save under `auto`,
    or an implementation that cannot pack under `auto`). `packing: on` with one that cannot is a ConfigError."""
    if config.packing == "off":
        return None
    refusal = packing_refusal(config, hf_config)
    if refusal is not None:
        if config.packing == "on":
            raise ConfigError(f"packing='on' cannot pack: {refusal}; or set packing='auto'/'off'")
        return None
    flash = attention_implementation(hf_config).startswith("flash")
    lengths = attention_mask.sum(dim=1).tolist()
    batch, length = attention_mask.shape
    capacity = int(sum(lengths)) if flash else int(max(lengths))
    starts: list[tuple[int, int]] = []  # (row, offset) of each item: next-fit, in batch order
    row, used = 0, 0
    for size in lengths:
        if used + size > capacity:
            row, used = row + 1, 0
        starts.append((row, used))
        used += size
    rows = row + 1
    if config.packing == "auto" and not flash and rows * capacity > (1 - AUTO_MIN_SAVING) * batch * length:
        return None
    device = attention_mask.device
    real = attention_mask.bool()
    rank = real.long().cumsum(dim=1) - 1  # each token's place in its item
    base = torch.tensor([r * capacity + offset for r, offset in starts], dtype=torch.long, device=device)
    source = real.flatten().nonzero().squeeze(1)
    target = (base[:, None] + rank)[real]
    item_ids = torch.arange(1, batch + 1, device=device)[:, None].expand(batch, length)[real]
    segments = torch.zeros(rows * capacity, dtype=torch.long, device=device).index_copy(0, target, item_ids)
    ranks = torch.zeros(rows * capacity, dtype=torch.long, device=device).index_copy(0, target, rank[real])
    return PackPlan(rows, capacity, source, target, segments.view(rows, capacity), ranks.view(rows, capacity),
                    (batch, length), flash)


@dataclass
class LanguageInputs:
    """What the language model is called with: ids (or embeddings), mask, positions, and the plan (None: padded)."""

    tokens: torch.Tensor
    mask: torch.Tensor | None
    position_ids: torch.Tensor
    plan: PackPlan | None

    def hidden(self, packed_hidden: torch.Tensor) -> torch.Tensor:
        """The language model's output in the padded B x L x H layout."""
        return packed_hidden if self.plan is None else self.plan.unpack(packed_hidden)


def language_inputs(tokens: torch.Tensor, batch: dict[str, Any], config: EmbeddingConfig, hf_config: Any,
                    dtype: torch.dtype, fill: int = 0) -> LanguageInputs:
    """`tokens` (B x L ids, or B x L x H embeddings) with the batch's mask and positions, packed when
    `plan_packing` says so. Positions: B x L (1-D) or 3 x B x L (M-RoPE); packed for flash they gain the
    per-item ranks in front (transformers reads packing from them: 4 x rows x C for M-RoPE models)."""
    attention_mask, positions = batch["attention_mask"], batch["position_ids"]
    plan = plan_packing(attention_mask, config, hf_config)
    if plan is None:
        return LanguageInputs(tokens, forward_mask(attention_mask, config.attention, hf_config, dtype), positions, None)
    packed_positions = plan.pack(positions, dim=positions.ndim - 2)
    if plan.flash:
        mask = None
        if packed_positions.ndim == 3:
            packed_positions = torch.cat([plan.ranks[None], packed_positions])
        else:
            packed_positions = plan.ranks
    else:
        mask = attention_bias(plan.segments, config.attention, dtype)
    return LanguageInputs(plan.pack(tokens, fill=fill), mask, packed_positions, plan)
