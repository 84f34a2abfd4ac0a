"""The late-interaction (multi-vector) head: the last hidden states projected token by token to
`EmbeddingConfig.multi_vector_dim` dimensions, each token L2-normalised, as ColBERT/ColPali/ColQwen do.

ColQwen2's head is one `nn.Linear(hidden_size, 128)` on the last hidden states, then a division by each token's
norm (illuin-tech/colpali@9be8f19 colpali_engine/models/qwen2/colqwen2/modeling_colqwen2.py:34-35, 65-68).

Masked positions (padding, and the instruction with `multi_vector_mask: instruction`) come out as exact zero
vectors, chosen with `where`, never by multiplying, so garbage (even NaN) in a padded hidden state cannot leak.
Because a real token has norm 1 and a masked one is all zeros, a padded token tensor carries its own mask
(`token_mask`): that lets token tensors travel through DDP and GradCache as one plain tensor.

The weights live in `late_interaction.safetensors` (`weight`: dim x hidden, `bias`: dim) beside the checkpoint.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..losses.late_interaction import token_mask

__all__ = ["HEAD_FILE", "LateInteractionHead", "head_for", "keep_mask", "pad_length", "token_mask"]

logger = logging.getLogger(__name__)

HEAD_FILE = "late_interaction.safetensors"


class LateInteractionHead(nn.Module):
    """`nn.Linear(hidden_size, dim)` per token, L2-normalised, masked positions zero."""

    def __init__(self, hidden_size: int, dim: int, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # a new head is the same for the same seed, whatever ran before
            torch.manual_seed(seed)
            self.proj = nn.Linear(hidden_size, dim)

    @property
    def dim(self) -> int:
        return self.proj.out_features

    @property
    def hidden_size(self) -> int:
        return self.proj.in_features

    def forward(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """B x L x hidden states -> B x L x dim unit token vectors; zero where `keep` (B x L bool) is False."""
        tokens = self.proj(hidden.to(self.proj.weight.dtype)).float()
        tokens = torch.nn.functional.normalize(tokens, dim=-1)
        return torch.where(keep.unsqueeze(-1), tokens, torch.zeros((), dtype=tokens.dtype, device=tokens.device))

    def save(self, directory: str | Path, state: dict[str, torch.Tensor] | None = None) -> None:
        """Write `late_interaction.safetensors` (float32, on the CPU) into `directory`: the head's own weights,
        or `state` keyed by its names (`proj.weight`, `proj.bias`), e.g. full tensors gathered from a sharded
        head, whose own parameters each hold one rank's shard."""
        from safetensors.torch import save_file

        state = self.state_dict() if state is None else state
        tensors = {name.removeprefix("proj."): value.detach().float().cpu().contiguous() for name, value in state.items()}
        save_file(tensors, str(Path(directory) / HEAD_FILE))

    @classmethod
    def load(cls, directory: str | Path, hidden_size: int, dim: int) -> "LateInteractionHead":
        """The head saved in `directory`; ConfigError naming the file when its shape is not hidden_size -> dim."""
        from safetensors.torch import load_file

        path = Path(directory) / HEAD_FILE
        state = load_file(str(path))
        shape = tuple(state.get("weight", torch.empty(0)).shape)
        if shape != (dim, hidden_size) or set(state) != {"weight", "bias"}:
            raise ConfigError(f"{path} holds a head of shape {shape} (keys {sorted(state)}), but the model needs "
                              f"weight {dim} x {hidden_size} and bias: multi_vector_dim in uniembed.json must be "
                              f"{shape[0] if shape else '?'}, or delete the file to start a new head")
        head = cls(hidden_size, dim)
        head.proj.load_state_dict(state)
        return head


def head_for(directory: str | Path | None, hidden_size: int, dim: int | None,
             saved: bool = False) -> LateInteractionHead | None:
    """The head a model of this config needs: None when `dim` is None; the saved one from `directory` when it
    has one; else a new random head (seed 0), said in a log line, to be trained (e.g. ColQwen from Qwen2-VL).
    `saved`: the folder's own uniembed.json names a head, so a missing file is an error, not a new head."""
    if dim is None:
        return None
    if directory is not None and (Path(directory) / HEAD_FILE).is_file():
        return LateInteractionHead.load(directory, hidden_size, dim)
    if saved:
        raise ConfigError(f"'{directory}' is a multi-vector model (its uniembed.json sets multi_vector_dim) but "
                          f"{HEAD_FILE} is missing; copy the file from where the model was saved, or load with "
                          "multi_vector_dim=None for the backbone alone")
    if directory is not None:
        logger.warning("uniembed: '%s' has no %s; starting a new random %d -> %d late-interaction head "
                       "(train it before use)", directory, HEAD_FILE, hidden_size, dim)
    return LateInteractionHead(hidden_size, dim)


def keep_mask(attention_mask: torch.Tensor, instruction_mask: torch.Tensor | None, mode: str) -> torch.Tensor:
    """B x L bool: the tokens a multi-vector embedding keeps (`EmbeddingConfig.multi_vector_mask`): real tokens,
    less the instruction span with `instruction`. An item that is all instruction keeps its real tokens."""
    keep = attention_mask.bool()
    if mode == "instruction" and instruction_mask is not None:
        narrowed = keep & ~instruction_mask.bool()
        keep = torch.where(narrowed.any(dim=1, keepdim=True), narrowed, keep)
    elif mode not in ("padding", "instruction"):
        raise ValueError(f"unknown multi_vector_mask {mode!r}")
    return keep


def pad_length(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """`tokens` (N x L x D) with zero rows appended up to `length` tokens (a no-op when L >= length)."""
    missing = length - tokens.shape[1]
    if missing <= 0:
        return tokens
    return torch.cat([tokens, tokens.new_zeros(tokens.shape[0], missing, tokens.shape[2])], dim=1)
