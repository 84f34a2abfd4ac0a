"""`Reranker`: a pointwise yes/no relevance scorer on the same MLLM (U-MARVEL after LamRA, docs/methods.md §3).

A query and one candidate share a single prompt, each side laid out as the embedding template lays out
an item (media first or last, the query's instruction before its text):

    <system> <user> Query: [query media] instruction\\ntext
    Candidate: [candidate media] text
    Does the candidate match the query? Answer Yes or No. <end of turn> <assistant>

The score is P(yes) = softmax(logit_Yes, logit_No)[Yes] of the language-model head at the first answer
token, i.e. at the last prompt position. Only the two rows of the LM head that the score needs are applied.
The prompt always runs with causal attention (it is the generative model reading it), whatever the
embedding model of the same checkpoint uses.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError, InputError, reject_unknown_fields
from ..inputs import Item, as_item, as_items
from ..media import DEFAULT_LIMITS, MediaLimits
from ..version import __version__
from .backbones import Backbone, DecodedItem
from .config import EmbeddingConfig, SavedModelInfo
from .embedder import Embedder
from .loading import load_backbone, resolve_device, tiny_spec
from .pooling import last_token_index
from .templates import Segment, chat_segments, content_segments

RERANKER_KIND = "reranker"
# what makes a template generative: the LM head reads the last prompt token of a causal pass
_GENERATIVE = dict(attention="causal", pooling="last", summary_suffix=False, eos_token=None, normalize=False,
                   instruction_placement="prefix")


@dataclass
class RerankerConfig:
    """The re-ranker's prompt: side labels, the yes/no question, the answer tokens, a per-side text budget."""

    question: str = "Does the candidate match the query? Answer Yes or No."
    yes_token: str = "Yes"
    no_token: str = "No"
    query_label: str = "Query: "
    candidate_label: str = "\nCandidate: "
    question_separator: str = "\n"
    max_text_tokens: int = 512  # each side's text is cut to this many tokens (visual tokens are never cut)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RerankerConfig":
        reject_unknown_fields(cls, data, "re-ranker option(s)")
        return cls(**data)


def generative_template(config: EmbeddingConfig) -> EmbeddingConfig:
    """The embedding config's prompt and pixel options with causal attention and no pooling suffix/eos."""
    return config.replace(**_GENERATIVE)


def answer_token_id(tokenizer: Any, word: str) -> int:
    """The single token id of an answer word; an error when the tokenizer splits it."""
    ids = tokenizer.encode(word, add_special_tokens=False)
    if len(ids) != 1:
        raise ConfigError(f"the answer word {word!r} is {len(ids)} tokens ({ids}) in this tokenizer, not one; "
                          "set yes_token / no_token to words the tokenizer keeps whole")
    return int(ids[0])


class RerankerModule(nn.Module):
    """The differentiable part: collated prompts -> B x 2 logits (yes, no) at the first answer token."""

    def __init__(self, backbone: Backbone, template: EmbeddingConfig, yes_id: int, no_id: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.vlm = backbone.model  # registered so .parameters(), .to(), DDP and checkpoints see the weights
        self.template = template
        self.answer_ids = (yes_id, no_id)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        device = next(self.vlm.parameters()).device
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        hidden = self.backbone.hidden_states(moved, self.template)
        last = hidden[torch.arange(hidden.shape[0], device=device), last_token_index(moved["attention_mask"])]
        head = self.backbone.hf_model.get_output_embeddings()
        rows = torch.tensor(self.answer_ids, device=device)
        bias = head.bias[rows] if getattr(head, "bias", None) is not None else None
        return F.linear(last, head.weight[rows], bias).float()


def p_yes(logits: torch.Tensor) -> torch.Tensor:
    """softmax(logit_yes, logit_no)[yes] for B x 2 logits."""
    return torch.softmax(logits.float(), dim=-1)[:, 0]


class Reranker:
    """Scores (query, candidate) pairs with P(yes) from the MLLM's own LM head.

    >>> reranker = Reranker.tiny()
    >>> reranker.score("a red circle", ["a red circle", {"image": "blue_square.png"}])
    array([0.51, 0.49], dtype=float32)
    """

    def __init__(self, backbone: Backbone, template: EmbeddingConfig | None = None,
                 config: RerankerConfig | None = None, *, limits: MediaLimits = DEFAULT_LIMITS, source: str = "") -> None:
        self.config = config or RerankerConfig()
        self.template = generative_template(template or EmbeddingConfig())
        # media are decoded exactly as the embedding model decodes them (frame policy, limits)
        self.items = Embedder(backbone, self.template, limits=limits, source=source)
        self.backbone = backbone
        self.source = source
        tokenizer = backbone.tokenizer
        self.module = RerankerModule(backbone, self.template, answer_token_id(tokenizer, self.config.yes_token),
                                     answer_token_id(tokenizer, self.config.no_token))

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_embedder(cls, embedder: Embedder, config: RerankerConfig | None = None) -> "Reranker":
        """A re-ranker on the embedder's weights (shared, not copied) with its prompt and pixel options."""
        return cls(embedder.backbone, embedder.config, config, limits=embedder.limits, source=embedder.source)

    @classmethod
    def tiny(cls, seed: int = 0, size: str = "tiny", config: RerankerConfig | None = None,
             family: str = "qwen2_vl") -> "Reranker":
        """A random tiny re-ranker of `family` (its tokenizer keeps Yes/No whole): tests and demos."""
        return cls.from_embedder(Embedder.tiny(seed=seed, size=size, family=family), config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None, attn_implementation: str | None = None,
                        limits: MediaLimits = DEFAULT_LIMITS, **overrides: Any) -> "Reranker":
        """Load a re-ranker directory, or any embedding / plain HF checkpoint as a zero-shot re-ranker, or build a
        random tiny one from a `tiny[:family][:size[:seed]]` spec. `device` as in `Embedder.from_pretrained`.

        `overrides` set `RerankerConfig` options (e.g. question="...").
        """
        tiny = tiny_spec(path)
        if tiny is not None:
            family, size, seed = tiny
            config = RerankerConfig.from_dict(overrides) if overrides else None
            reranker = cls.tiny(seed=seed, size=size, config=config, family=family)
            reranker.items.limits = limits
            return reranker.to(resolve_device(device)) if device is not None else reranker
        backbone, info = load_backbone(path, dtype, attn_implementation)
        template = info.embedding if info else Embedder.default_config(type(backbone))
        saved = (info.extra.get(RERANKER_KIND) or {}) if info and info.kind == RERANKER_KIND else {}
        config = RerankerConfig.from_dict({**saved, **overrides})
        reranker = cls(backbone, template, config, limits=limits, source=str(path))
        backbone.model.eval()
        if device is not None:
            reranker.to(resolve_device(device))
        return reranker

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Weights (LoRA merged), tokenizer, image processor and a `uniembed.json` of kind "reranker"."""
        self.items.save_pretrained(path)
        SavedModelInfo(embedding=self.template, backbone=type(self.backbone).__name__,
                       uniembed_version=__version__, extra={RERANKER_KIND: self.config.to_dict()},
                       kind=RERANKER_KIND).save(path)

    def to(self, device: str | torch.device) -> "Reranker":
        self.module.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def model_id(self) -> str:
        """Identifies weights + prompt (keys caches of re-ranker scores)."""
        prompt = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.items.model_id}-{prompt}"

    # ---- prompts ---------------------------------------------------------------------------------
    def _clip(self, item: Item) -> Item:
        """The item with its text cut to `max_text_tokens` tokens."""
        if not item.text:
            return item
        tokenizer = self.backbone.tokenizer
        ids = tokenizer.encode(item.text, add_special_tokens=False)
        if len(ids) <= self.config.max_text_tokens:
            return item
        return Item(tokenizer.decode(ids[: self.config.max_text_tokens]), item.image, item.images, item.video,
                    item.instruction)

    def pair_segments(self, query: DecodedItem, candidate: DecodedItem) -> list[Segment]:
        """The prompt layout of one pair; the candidate's media indices follow the query's."""
        offset = (len(query.images), len(query.videos))
        user = [Segment("text", self.config.query_label)]
        user += content_segments(query.item, self.template, offset, query.item.instruction)
        user.append(Segment("text", self.config.candidate_label))
        user += content_segments(candidate.item, self.template, (len(candidate.images), len(candidate.videos)),
                                 candidate.item.instruction, media_offset=offset)
        user.append(Segment("text", self.config.question_separator + self.config.question))
        return chat_segments(user, self.template, self.backbone.chat, self.template.system_prompt)

    def decode_pair(self, query: Item | DecodedItem, candidate: Item | DecodedItem, position: int | None = None) -> DecodedItem:
        """Both sides' media decoded and laid out as one prompt (the backbone's collate takes it as is)."""
        q = query if isinstance(query, DecodedItem) else self.items.decode(self._clip(query), position)
        c = candidate if isinstance(candidate, DecodedItem) else self.items.decode(self._clip(candidate), position)
        return DecodedItem(c.item, q.images + c.images, q.videos + c.videos, self.pair_segments(q, c))

    def collate(self, pairs: list[DecodedItem]) -> dict[str, Any]:
        return self.backbone.collate(pairs, self.template)

    # ---- scoring ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def logits(self, pairs: Sequence[tuple[Any, Any]], batch_size: int = 16, show_progress_bar: bool | None = None) -> np.ndarray:
        """N x 2 (yes, no) logits of (query, candidate) pairs, in input order; batch-invariant."""
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        items = [(as_item(q, i), as_item(c, i)) for i, (q, c) in enumerate(pairs)]
        output = np.zeros((len(items), 2), dtype=np.float32)
        was_training = self.module.training
        self.module.eval()
        progress = tqdm(total=len(items), desc="rerank", unit="pair",
                        disable=not (show_progress_bar if show_progress_bar is not None else len(items) > 4 * batch_size))
        decoded_queries: dict[str, DecodedItem] = {}
        try:
            for start in range(0, len(items), batch_size):
                batch = []
                for position in range(start, min(start + batch_size, len(items))):
                    query, candidate = items[position]
                    key = query.content_key()
                    if key not in decoded_queries:  # a query reranking many candidates is decoded once
                        decoded_queries = {key: self.items.decode(self._clip(query), position)}
                    batch.append(self.decode_pair(decoded_queries[key], candidate, position))
                output[start: start + len(batch)] = self.module(self.collate(batch)).cpu().numpy()
                progress.update(len(batch))
        finally:
            progress.close()
            self.module.train(was_training)
        return output

    def score_pairs(self, pairs: Sequence[tuple[Any, Any]], batch_size: int = 16,
                    show_progress_bar: bool | None = None) -> np.ndarray:
        """P(yes) of each (query, candidate) pair, float32 in [0, 1]."""
        logits = torch.from_numpy(self.logits(pairs, batch_size, show_progress_bar))
        return p_yes(logits).numpy().astype(np.float32)

    def score(self, query: Any, candidates: Sequence[Any], batch_size: int = 16) -> np.ndarray:
        """P(yes) of each candidate for `query` (the serving `Reranker` protocol)."""
        query_item = as_item(query)
        candidate_items = as_items(candidates) if not isinstance(candidates, Item) else [candidates]
        if not candidate_items:
            raise InputError("no candidates to re-rank", fix="pass at least one candidate")
        return self.score_pairs([(query_item, c) for c in candidate_items], batch_size)

    def __repr__(self) -> str:
        return f"Reranker(source={self.source!r}, yes={self.config.yes_token!r}, no={self.config.no_token!r})"
