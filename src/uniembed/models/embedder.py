"""`Embedder`: a VLM plus an embedding config, with the encode API users know from sentence-transformers."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError, InputError
from ..inputs import Item, as_items
from ..losses.matryoshka import truncate
from ..media import DEFAULT_LIMITS, MediaLimits
from ..version import __version__
from .backbones import Backbone, DecodedItem, backbone_for
from .config import EmbeddingConfig, SavedModelInfo, model_fingerprint
from .length_groups import LengthGroups, length_groups
from .late_interaction import LateInteractionHead, head_for, keep_mask, pad_length
from .loading import existing_base_path, load_backbone, merged_copy, resolve_device, resolve_profile_config, tiny_spec
from .pooling import check_truncate_dim, pool
from .prefetch import pinned, read_ahead
from .profile import Profile, get_profile


class EmbeddingModule(nn.Module):
    """The differentiable part: collated batch -> pooled (optionally normalised) embeddings, or with
    `multi_vector=True` the late-interaction head's token vectors.

    A plain `nn.Module` so training can wrap it in DDP/FSDP and run GradCache over it. It also takes
    `LengthGroups` and returns the rows in the caller's order. `head` (a `LateInteractionHead`, registered so
    .parameters(), .to() and DDP see it) is None for a single-vector model.
    """

    def __init__(self, backbone: Backbone, config: EmbeddingConfig, head: LateInteractionHead | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.vlm = backbone.model  # registered so .parameters(), .to() and DDP see the weights
        self.config = config
        self.head = head

    def forward(self, batch: dict[str, Any] | LengthGroups, normalize: bool | None = None,
                multi_vector: bool = False, pad_to: int = 0) -> torch.Tensor:
        """B x D pooled vectors; with `multi_vector`, B x L x multi_vector_dim token vectors (L = the longest
        row, at least `pad_to`), masked tokens all zero (`late_interaction.token_mask` recovers the mask)."""
        if isinstance(batch, LengthGroups):
            parts = [self(part, normalize, multi_vector, pad_to) for part in batch.batches]
            if multi_vector:
                parts = [pad_length(part, max(p.shape[1] for p in parts)) for part in parts]
            pooled = torch.cat(parts)
            return pooled[torch.tensor(np.argsort(batch.positions), device=pooled.device)]
        if multi_vector:
            return pad_length(self.tokens(batch)[0], pad_to)
        moved, hidden = self._hidden(batch)
        pooled = pool(hidden, moved["attention_mask"], self.config.pooling, moved.get("instruction_mask"))
        pooled = pooled.float()
        if self.config.normalize if normalize is None else normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled

    def tokens(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The late-interaction token vectors of one collated batch (B x L x dim, float32, masked rows zero) and
        the B x L mask of the tokens kept (padding and, per `multi_vector_mask`, the instruction dropped)."""
        if self.head is None:
            raise ConfigError("this model has no late-interaction head (multi_vector_dim is null); load it with "
                              "multi_vector_dim=128 (a new head, to be trained) or use encode()")
        moved, hidden = self._hidden(batch)
        keep = keep_mask(moved["attention_mask"], moved.get("instruction_mask"), self.config.multi_vector_mask)
        return self.head(hidden, keep), keep

    def _hidden(self, batch: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor]:
        device = next(self.vlm.parameters()).device
        early = device.type == "cuda"  # host -> GPU copies of pinned batches overlap (`Embedder._batches` pins them)
        moved = {k: v.to(device, non_blocking=early) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return moved, self.backbone.hidden_states(moved, self.config)


class Embedder:
    """Embeds items (text, images, video and combinations) into one vector space.

    >>> model = Embedder.tiny()
    >>> vectors = model.encode(["a red circle", {"text": "a red circle", "image": "scene.png"}])
    """

    # `encode` decodes media in its own threads (`iter_batches`), so callers that batch for it (the distinct-item
    # encoder of eval, encode and mine) hand it items as they are: one decode stage, one pool
    decodes_in_background = True

    def __init__(self, backbone: Backbone, config: EmbeddingConfig | None = None, *,
                 limits: MediaLimits = DEFAULT_LIMITS, source: str = "", head: LateInteractionHead | None = None) -> None:
        self.backbone = backbone
        self.config = config or EmbeddingConfig()
        self.limits = limits
        self.source = source
        width = self.config.multi_vector_dim
        if head is not None and (width is None or head.dim != width):
            raise ConfigError(f"a {head.dim}-d late-interaction head does not fit multi_vector_dim={width}")
        self.module = EmbeddingModule(backbone, self.config, head or head_for(None, backbone.embedding_dim, width))
        self._fingerprint: str | None = None

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None, attn_implementation: str | None = None,
                        limits: MediaLimits = DEFAULT_LIMITS, profile: str | Profile | None = None,
                        **overrides: Any) -> "Embedder":
        """Load a local directory: a HF checkpoint (optionally a LoRA adapter) plus `uniembed.json`; or build a
        random tiny model from a `tiny[:family][:size[:seed]]` spec (`Embedder.tiny`, float32 whatever `dtype`).

        The one door to a model: the CLI and the trainer load through it. `device="auto"` takes CUDA when
        present, else the CPU; without `device` the model stays on the CPU.

        `profile` names a published family's settings (`uniembed profiles`); without it, a saved
        `uniembed.json` is used as written, and a plain checkpoint whose name identifies a known family
        (e.g. "VLM2Vec-Qwen2VL-7B") gets that family's profile, said in one log line; `profile="none"` keeps the
        library defaults. `overrides` set single embedding options on top.
        """
        tiny = tiny_spec(path)
        if tiny is not None:
            family, size, seed = tiny
            embedder = cls.tiny(seed=seed, size=size, family=family, profile=profile, **overrides)
            embedder.limits = limits
            return embedder.to(resolve_device(device)) if device is not None else embedder
        backbone, info = load_backbone(path, dtype, attn_implementation)
        if info is not None and info.kind != "embedder":
            raise ConfigError(f"'{path}' holds a {info.kind}, not an embedding model; load it with "
                              f"uniembed.{info.kind.capitalize()}.from_pretrained")
        directory = Path(path)
        backbone_cls = type(backbone)
        config = resolve_profile_config(directory, backbone, info.embedding if info else None,
                                        cls.default_config(backbone_cls), profile, overrides)
        head = head_for(directory, backbone.embedding_dim, config.multi_vector_dim,
                        saved=bool(info and info.embedding.multi_vector_dim == config.multi_vector_dim))
        embedder = cls(backbone, config, limits=limits, source=str(directory), head=head)
        embedder.backbone.model.eval()
        if device is not None:
            embedder.to(resolve_device(device))
        return embedder

    @staticmethod
    def default_config(backbone_cls: type[Backbone]) -> EmbeddingConfig:
        """Defaults for a plain checkpoint: last-token pooling, causal, M-RoPE, left padding, chat template."""
        return EmbeddingConfig(eos_token=backbone_cls.default_eos_token or None, **backbone_cls.config_defaults)

    @classmethod
    def tiny(cls, seed: int = 0, size: str = "tiny", family: str = "qwen2_vl", profile: str | Profile | None = None,
             **overrides: Any) -> "Embedder":
        """A tiny random VLM of `family` (`qwen2_vl`, `qwen3_vl`, `llava_onevision`) with an offline tokenizer and
        processor: the same code path as the full-size model, for tests and the demo.

        `profile` applies a published family's settings over the library defaults (its pixel bounds too: as a
        real checkpoint loaded with that profile gets them)."""
        from .tiny import check_tiny_family

        backbone_cls = backbone_for(check_tiny_family(family))
        model, tokenizer, image_processor, defaults = backbone_cls.build_tiny(size, seed)
        backbone = backbone_cls(model, tokenizer, image_processor, f"tiny-{family}-{size}")
        if profile not in (None, "none"):  # a profile starts from the library defaults, as from_pretrained does
            config = get_profile(profile).config(cls.default_config(backbone_cls))
        else:
            config = EmbeddingConfig(**defaults)
        tag = "" if family == "qwen2_vl" else f"{family}:"
        config = config.replace(**overrides)
        width = config.multi_vector_dim  # multi_vector_dim=128: a tiny ColQwen-style model, its head seeded too
        head = LateInteractionHead(backbone.embedding_dim, width, seed) if width else None
        return cls(backbone, config, source=f"tiny:{tag}{size}:seed={seed}", head=head)

    def save_pretrained(self, path: str | os.PathLike, merge_lora: bool = True,
                        state_dict: dict[str, Any] | None = None, keep_adapter: bool = False,
                        matryoshka_dimensions: list[int] | None = None,
                        head_state: dict[str, Any] | None = None) -> None:
        """Write weights, tokenizer, processor and `uniembed.json`: everything loading needs, plus the files
        sentence-transformers and vLLM read (chat template, modules, pooling, model card; `models/interop.py`).

        LoRA adapters are merged into a normal checkpoint by default (loads anywhere, soups cleanly);
        `keep_adapter` also writes the adapter alone into `adapter/`; `merge_lora=False` writes the adapter
        alone, referencing the base checkpoint directory.
        `state_dict` replaces the model's own weights and `head_state` the late-interaction head's (full tensors
        gathered from a sharded model).
        """
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        model = self.backbone.model
        is_peft = hasattr(model, "peft_config")
        base_model = None
        if is_peft and not merge_lora:
            base_model = existing_base_path(self.backbone)
            model.save_pretrained(directory)
            self.backbone.tokenizer.save_pretrained(directory)
            self.backbone.image_processor.save_pretrained(directory)
        else:
            merged = merged_copy(model) if is_peft else model
            original = self.backbone.model
            self.backbone.model = merged
            try:
                self.backbone.save(directory, state_dict=state_dict)
            finally:
                self.backbone.model = original
            if is_peft and keep_adapter:
                model.save_pretrained(directory / "adapter")
        if self.module.head is not None:
            self.module.head.save(directory, head_state)
        SavedModelInfo(
            embedding=self.config,
            backbone=type(self.backbone).__name__,
            base_model=base_model,
            adapter=bool(base_model),
            uniembed_version=__version__,
        ).save(directory)
        if not base_model:
            from .interop import write_interop_files

            write_interop_files(self, directory, matryoshka_dimensions)

    # ---- properties ------------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        return self.backbone.embedding_dim

    @property
    def multi_vector_dimension(self) -> int | None:
        """Width of each token vector of `encode_multi` (`multi_vector_dim`); None for a single-vector model."""
        return self.config.multi_vector_dim

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.backbone.modalities

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def model_id(self) -> str:
        """Identifies weights + embedding config; keys the on-disk embedding cache."""
        if self._fingerprint is None:
            self._fingerprint = self.fingerprint()
        return self._fingerprint

    def fingerprint(self) -> str:
        """The model id: the embedding config and `weights_fingerprint` (see `config.model_fingerprint`)."""
        return model_fingerprint(self.config, self.weights_fingerprint())

    def weights_fingerprint(self) -> str:
        """A digest of every parameter's name, shape and 256 sampled values (cheap for any model size); with the
        config it keys the embedding cache, and a warm eval reads it back from the cache's record (`deferred`)."""
        digest = hashlib.sha256()
        with torch.no_grad():
            for name, parameter in self.module.named_parameters():
                flat = parameter.detach().reshape(-1)
                sample = flat[:: max(1, flat.numel() // 256)][:256].float().cpu().numpy()
                digest.update(name.encode() + str(tuple(parameter.shape)).encode() + sample.tobytes())
        return digest.hexdigest()

    def with_options(self, **overrides: Any) -> "Embedder":
        """The same model (shared weights) embedding under `overrides` of its config (a profile's per-task layout)."""
        config = self.config.replace(**overrides)
        head = self.module.head if config.multi_vector_dim == self.config.multi_vector_dim else None
        return Embedder(self.backbone, config, limits=self.limits, source=self.source, head=head)

    def invalidate_fingerprint(self) -> None:
        """Call after changing weights (training) so caches keyed on the model are not reused."""
        self._fingerprint = None

    def to(self, device: str | torch.device) -> "Embedder":
        self.module.to(device)
        return self

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad or not trainable_only)

    def info(self) -> dict[str, Any]:
        hf_config = getattr(self.backbone.model, "config", None)
        return {
            "source": self.source,
            "backbone": type(self.backbone).__name__,
            "model_type": getattr(hf_config, "model_type", None),
            "parameters": self.num_parameters(),
            "dimension": self.dimension,
            "multi_vector_dimension": self.multi_vector_dimension,
            "modalities": list(self.modalities),
            "dtype": str(next(self.module.parameters()).dtype).replace("torch.", ""),
            "profile": self.config.profile,
            "embedding_config": self.config.to_dict(),
        }

    # ---- decoding and batching -------------------------------------------------------------------
    def decode(self, item: Item, position: int | None = None) -> DecodedItem:
        """Decode the item's media under the frame policy; errors name the item's position."""
        try:
            images = item.load_images(self.limits)
            videos, frame_images = [], 0
            if item.video is not None:
                frames = item.load_video(self.config.frames, self.limits)
                if self.config.video_as_images:
                    images, frame_images = images + frames, len(frames)
                else:
                    videos = [frames]
        except InputError as exc:
            raise exc.at(position) from None
        return DecodedItem(item, images, videos, frame_images=frame_images)

    def prepare(self, item: Item, position: int | None = None) -> DecodedItem:
        """`decode` plus tokenisation and pixel preprocessing: all of an item's share of `collate`."""
        return self.backbone.prepare(self.decode(item, position), self.config)

    def estimate_tokens(self, item: Item) -> int:
        """The backbone's token estimate of `item` under this model's config (no pixels decoded), used to form
        batches of similar length here, in eval and encode, and to budget serving's batches."""
        return self.backbone.estimate_tokens(item, self.config)

    def collate(self, decoded: list[DecodedItem]) -> dict[str, Any]:
        return self.backbone.collate(decoded, self.config)

    def collate_by_length(self, decoded: list[DecodedItem]) -> LengthGroups:
        """`collate` in groups of similar token length (each item is tokenised once, here or by `prepare`)."""
        lengths = [len(self.backbone.item_tokens(item, self.config)[0]) for item in decoded]
        groups = length_groups(lengths)
        return LengthGroups([self.collate([decoded[i] for i in group]) for group in groups],
                            [i for group in groups for i in group])

    def count_tokens(self, items: Sequence[Any]) -> dict[str, int]:
        """Text and visual tokens the items occupy (for serving usage reports)."""
        batch = self.collate([self.decode(item, i) for i, item in enumerate(as_items(items))])
        total = int(batch["attention_mask"].sum())
        return {"text_tokens": total - int(batch["num_visual_tokens"]), "visual_tokens": int(batch["num_visual_tokens"])}

    def resolve_items(self, inputs: Any, instruction: str | None = None, prompt_name: str | None = None) -> list[Item]:
        """Inputs as Items with `instruction`, or the named prompt (default: the model's default prompt),
        applied to those that carry no instruction of their own."""
        items = as_items(inputs)
        if prompt_name is not None and instruction is not None:
            raise ConfigError("pass either instruction or prompt_name, not both")
        name = prompt_name if prompt_name is not None else self.config.default_prompt_name
        if name is not None:
            if name not in self.config.prompts:
                raise ConfigError(f"unknown prompt_name {name!r}; this model has {sorted(self.config.prompts)}")
            instruction = self.config.prompts[name] or None
        if instruction is not None:
            items = [item if item.instruction else item.with_instruction(instruction) for item in items]
        return items

    def iter_batches(self, items: list[Item], batch_size: int, workers: int = 2) -> Iterator[tuple[list[int], list[DecodedItem]]]:
        """Batches of similar length, longest first, each item already `prepare`d (media decoded, tokenised, pixels
        cut into patches) in `workers` background threads while the caller runs the forward pass of an earlier
        batch (`prefetch.read_ahead`: at most `workers + 1` batches ahead, each released once yielded)."""
        return self._read_ahead(items, batch_size, lambda decoded: decoded, workers)

    def _read_ahead(self, items: list[Item], batch_size: int, finish: Callable[[list[DecodedItem]], Any],
                    workers: int = 2) -> Iterator[tuple[list[int], Any]]:
        """(input positions, `finish(prepared items)`) per batch of similar length, built in background threads."""
        order = sorted(range(len(items)), key=lambda i: -self.estimate_tokens(items[i]))
        groups = [order[start: start + batch_size] for start in range(0, len(order), batch_size)]
        return read_ahead(groups, lambda group: (group, finish([self.prepare(items[i], i) for i in group])), workers)

    # ---- the encode API --------------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, items: Any, batch_size: int = 32, instruction: str | None = None, prompt_name: str | None = None,
               normalize: bool | None = None, show_progress_bar: bool | None = None, convert_to: str = "numpy",
               device: str | torch.device | None = None, truncate_dim: int | None = None) -> np.ndarray | torch.Tensor:
        """Embed items; returns a float32 N x D array (or tensor with `convert_to="tensor"`) in input order.

        An item's embedding does not depend on the rest of its batch, the batch size or the order.
        `instruction` is applied to items that have none; `prompt_name` picks one of the model's named prompts.
        `truncate_dim=d` keeps the first d coordinates (Matryoshka), re-normalised when the model normalises.
        On a multi-vector model it is still the pooled vector (`pooling`), untrained by a late-interaction-only
        stage: its token vectors are `encode_multi`'s.
        """
        if convert_to not in ("numpy", "tensor"):
            raise ConfigError(f"convert_to must be 'numpy' or 'tensor', got {convert_to!r}")
        check_truncate_dim(truncate_dim, self.dimension, trained=self.config.matryoshka_dims)
        width = truncate_dim or self.dimension
        unit = self.config.normalize if normalize is None else normalize
        resolved = self.resolve_items(items, instruction, prompt_name)
        output = torch.empty((len(resolved), width), dtype=torch.float32)
        for group, batch in self._batches(resolved, batch_size, show_progress_bar, device, "encode"):
            vectors = self.module(batch, normalize=unit)
            if truncate_dim is not None:
                vectors = truncate(vectors, truncate_dim, unit)
            output[torch.tensor(group)] = vectors.float().cpu()
        return output.numpy() if convert_to == "numpy" else output

    @torch.inference_mode()
    def encode_multi(self, items: Any, batch_size: int = 32, instruction: str | None = None,
                     prompt_name: str | None = None, show_progress_bar: bool | None = None,
                     device: str | torch.device | None = None) -> list[np.ndarray]:
        """Late-interaction embeddings: one float32 (n_tokens_i x multi_vector_dimension) array per item, in input
        order, of the item's kept tokens (`multi_vector_mask`: padding, and optionally the instruction, dropped),
        each row L2-normalised. Same batching, decoding and prompts as `encode`; independent of the batch.
        Score them with `uniembed.losses.maxsim` (after `pad_tokens`). Needs a model with `multi_vector_dim`."""
        if self.module.head is None:
            raise ConfigError(f"{self.source or 'this model'} is a single-vector model (multi_vector_dim is null): "
                              "use encode(), or load it with multi_vector_dim=128 and train the new head")
        resolved = self.resolve_items(items, instruction, prompt_name)
        output: list[np.ndarray] = [np.empty((0, self.config.multi_vector_dim), np.float32)] * len(resolved)
        for group, batch in self._batches(resolved, batch_size, show_progress_bar, device, "encode_multi"):
            tokens, keep = self.module.tokens(batch)
            tokens, keep = tokens.cpu(), keep.cpu()
            for row, index in enumerate(group):
                output[index] = tokens[row][keep[row]].numpy()
        return output

    def _batches(self, resolved: list[Item], batch_size: int, show_progress_bar: bool | None,
                 device: str | torch.device | None, desc: str) -> Iterator[tuple[list[int], dict[str, Any]]]:
        """The one encode loop of `encode` and `encode_multi`: (input positions, collated batch) of similar
        length, each batch decoded, tokenised and collated (pinned for a CUDA device) in the background threads
        while the forward pass of an earlier one runs, the module in eval mode and a progress bar meanwhile."""
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        if device is not None:
            self.to(device)
        was_training = self.module.training
        self.module.eval()
        progress = tqdm(total=len(resolved), desc=desc, unit="item",
                        disable=not (show_progress_bar if show_progress_bar is not None else len(resolved) > 4 * batch_size))
        pin = self.device.type == "cuda"  # the copy to the GPU then runs asynchronously (`EmbeddingModule._hidden`)

        def finish(decoded: list[DecodedItem]) -> dict[str, Any]:
            return pinned(self.collate(decoded)) if pin else self.collate(decoded)

        try:
            for group, batch in self._read_ahead(resolved, batch_size, finish):
                yield group, batch
                progress.update(len(group))
        finally:
            progress.close()
            self.module.train(was_training)

    def encode_query(self, items: Any, **kwargs: Any) -> np.ndarray | torch.Tensor:
        """`encode` with the model's "query" prompt when it has one."""
        return self.encode(items, prompt_name="query" if "query" in self.config.prompts else None, **kwargs)

    def encode_document(self, items: Any, **kwargs: Any) -> np.ndarray | torch.Tensor:
        """`encode` with the model's "document" prompt when it has one."""
        return self.encode(items, prompt_name="document" if "document" in self.config.prompts else None, **kwargs)

    @staticmethod
    def similarity(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Cosine similarity matrix between two sets of embeddings."""
        if isinstance(a, np.ndarray):
            a_n = a / np.clip(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12, None)
            b_n = np.asarray(b) / np.clip(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12, None)
            return a_n @ b_n.T
        return torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(torch.as_tensor(b), dim=-1).T

    def __repr__(self) -> str:
        return f"Embedder(source={self.source!r}, dimension={self.dimension}, pooling={self.config.pooling!r})"

