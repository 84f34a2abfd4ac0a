"""GradCache: contrastive training with a large batch at the memory of one chunk (docs/methods.md §2).

A contrastive loss couples every embedding in the batch, so the batch cannot simply be split into
gradient-accumulation steps. GradCache instead (1) embeds every chunk without an autograd graph, (2) computes
the loss on the detached embeddings and backpropagates it to them only, then (3) re-runs each chunk with a
graph and pushes the cached embedding gradients through it. Step (3) restores each chunk's random state so
dropout draws the same masks as in step (1): the gradients equal those of the unchunked computation.
Under DistributedDataParallel (or FSDP2), all replays but each model's last skip the gradient sync, so
gradients are synchronised once per step.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


Encoder = Callable[[Any], Tensor]
SplitFn = Callable[[Any, int], list]


def split_batch(batch: Any, chunk_size: int) -> list:
    """Split a batch along its first dimension into chunks of at most `chunk_size` rows.

    A batch is a tensor, a list/tuple of items (sliced as a sequence), or a mapping whose tensor and list
    values all share the batch length (other values, e.g. None or flags, are given to every chunk). Batches
    whose rows are not along dim 0 (e.g. Qwen2-VL's concatenated `pixel_values`) need their own `split_fn`.
    """
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    length = batch_length(batch)
    return [_slice(batch, start, min(start + chunk_size, length)) for start in range(0, length, chunk_size)]


def split_into(batch: Any, count: int) -> list:
    """Split a batch (as `split_batch` understands it) into exactly `count` chunks of near-equal size."""
    length = batch_length(batch)
    if not 1 <= count <= length:
        raise ValueError(f"cannot split {length} rows into {count} non-empty chunks; raise grad_cache_chunk so "
                         "that every rank's share of the batch fills its chunks")
    bounds = [round(k * length / count) for k in range(count + 1)]
    return [_slice(batch, start, stop) for start, stop in zip(bounds, bounds[1:])]


def batch_length(batch: Any) -> int:
    """The number of rows of a batch as understood by `split_batch`."""
    if isinstance(batch, Tensor):
        if batch.dim() == 0:
            raise ValueError("a 0-d tensor is not a batch; stack the inputs along dim 0")
        return batch.shape[0]
    if isinstance(batch, Mapping):
        lengths = {key: batch_length(value) for key, value in batch.items() if _is_batched(value)}
        if not lengths or len(set(lengths.values())) != 1:
            raise ValueError(f"cannot split this batch: its batched values have lengths {lengths}; give every "
                             "tensor/list value the same first dimension, or pass a split_fn")
        return next(iter(lengths.values()))
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        return len(batch)
    raise TypeError(f"cannot split a batch of type {type(batch).__name__}; pass a tensor, a list of items or a dict "
                    "of tensors, or give GradCache a split_fn")


def _is_batched(value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.dim() > 0
    return isinstance(value, (Mapping, list, tuple))


def _slice(batch: Any, start: int, stop: int) -> Any:
    if isinstance(batch, Mapping):
        return {key: _slice(value, start, stop) if _is_batched(value) else value for key, value in batch.items()}
    return batch[start:stop]


class RandomState:
    """The CPU and CUDA generator states at one moment, to replay a forward pass with the same dropout."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


class GradCache:
    """Run one training step's forward and backward in chunks with the gradients of the whole batch.

    `encoders` is one callable per input kind (e.g. `[embed_queries, embed_candidates]`; the same model may
    appear twice), each mapping a chunk of its input to an embedding tensor with one row per input row.
    `loss_fn(*embeddings, **loss_kwargs)` receives the whole batch's embeddings (one tensor per encoder) and
    returns a scalar; any loss of `uniembed.losses`, including `local_contrastive_loss`, fits.
    `chunk_size=None` runs the plain unchunked step (same interface, no second forward).
    Models wrapped in DistributedDataParallel are found among `encoders`; if an encoder is a function that
    calls a DDP model or an FSDP2-sharded one, list that model in `sync_modules`. `scale_loss` (e.g.
    `GradScaler.scale` for float16) is applied to the loss before its backward; the cached gradients carry the scale into the encoders.
    `backward(scalar, last)` runs each backward that reaches the encoders (default: `scalar.backward()`); `last`
    marks the step's final one, e.g. DeepSpeed's gradient-accumulation boundary.
    A DDP model built with `broadcast_buffers=True` (the default) broadcasts its buffers in every forward, so
    then every rank must run the same number of chunks (equal local batch sizes); otherwise build it with
    `broadcast_buffers=False`.
    """

    def __init__(
        self,
        encoders: Encoder | Sequence[Encoder],
        loss_fn: Callable[..., Tensor],
        chunk_size: int | None,
        *,
        split_fn: SplitFn = split_batch,
        sync_modules: Sequence[nn.Module] = (),
        scale_loss: Callable[[Tensor], Tensor] | None = None,
        backward: Callable[[Tensor, bool], None] | None = None,
    ) -> None:
        self.encoders = list(encoders) if isinstance(encoders, Sequence) else [encoders]
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
        self.loss_fn = loss_fn
        self.chunk_size = chunk_size
        self.split_fn = split_fn
        self.sync_modules = list(sync_modules)
        self.scale_loss = scale_loss or (lambda loss: loss)
        self.backward = backward

    def step(self, *inputs: Any, **loss_kwargs: Any) -> Tensor:
        """Forward and backward for one batch (one input per encoder); returns the detached loss.

        Gradients are accumulated into `.grad` of the encoders' (and the loss's) parameters; the caller
        runs the optimizer.
        """
        if len(inputs) != len(self.encoders):
            raise TypeError(f"GradCache has {len(self.encoders)} encoders but step() got {len(inputs)} inputs")
        if self.chunk_size is None:
            loss = self.loss_fn(*(encode(batch) for encode, batch in zip(self.encoders, inputs)), **loss_kwargs)
            self._backward(self.scale_loss(loss), True)
            return loss.detach()

        chunks = [self.split_fn(batch, self.chunk_size) for batch in inputs]
        states, embeddings = self._embed_without_graph(chunks)
        leaves = [torch.cat(parts).detach().requires_grad_() for parts in embeddings]
        loss = self.loss_fn(*leaves, **loss_kwargs)
        self.scale_loss(loss).backward()
        after_loss = RandomState()
        self._replay_with_graph(chunks, states, embeddings, leaves)
        after_loss.restore()
        return loss.detach()

    def _embed_without_graph(self, chunks: list[list]) -> tuple[list[list[RandomState]], list[list[Tensor]]]:
        states, embeddings = [], []
        with torch.no_grad():
            for index, (encode, parts) in enumerate(zip(self.encoders, chunks)):
                states.append([])
                embeddings.append([])
                for part in parts:
                    states[-1].append(RandomState())
                    embeddings[-1].append(self._encode(encode, part, index))
        return states, embeddings

    def _backward(self, scalar: Tensor, last: bool) -> None:
        if self.backward is None:
            scalar.backward()
        else:
            self.backward(scalar, last)

    def _replay_with_graph(self, chunks, states, embeddings, leaves) -> None:
        last_use = self._last_use_of_each_synced_model(chunks)
        final = (len(chunks) - 1, len(chunks[-1]) - 1)
        for index, (encode, parts) in enumerate(zip(self.encoders, chunks)):
            grad = leaves[index].grad
            if grad is None:  # the loss ignored these embeddings: replay anyway so DDP still syncs once
                grad = torch.zeros_like(leaves[index])
            grads = grad.split([emb.shape[0] for emb in embeddings[index]])
            for position, part in enumerate(parts):
                states[index][position].restore()
                with self._no_sync_except(last_use, (index, position)):
                    embedding = self._encode(encode, part, index)
                    if embedding.shape != embeddings[index][position].shape:
                        raise ValueError(
                            f"encoder {index} returned shape {tuple(embedding.shape)} on the replay of chunk "
                            f"{position} but {tuple(embeddings[index][position].shape)} the first time; make the "
                            "encoder deterministic given the random state")
                    if self.backward is None:
                        torch.autograd.backward(embedding, grads[position])
                    else:  # a scalar whose gradient with respect to the embedding is the cached one
                        self.backward((embedding * grads[position]).sum(), (index, position) == final)

    @staticmethod
    def _encode(encode: Encoder, part: Any, index: int) -> Tensor:
        embedding = encode(part)
        if not isinstance(embedding, Tensor) or embedding.dim() < 1:
            raise TypeError(f"encoder {index} must return a tensor with one row per input, got {type(embedding)}")
        return embedding

    def _synced_models_of(self, encoder: Encoder) -> list[nn.Module]:
        if isinstance(encoder, DistributedDataParallel):
            return [encoder]
        return self.sync_modules

    def _last_use_of_each_synced_model(self, chunks: list[list]) -> dict[int, tuple[nn.Module, tuple[int, int]]]:
        """For each distributed model: (model, (encoder index, chunk index) of its last replay this step)."""
        last_use: dict[int, tuple[nn.Module, tuple[int, int]]] = {}
        for index, (encoder, parts) in enumerate(zip(self.encoders, chunks)):
            for model in self._synced_models_of(encoder):
                last_use[id(model)] = (model, (index, len(parts) - 1))
        return last_use

    @staticmethod
    def _no_sync_except(last_use, current: tuple[int, int]) -> contextlib.ExitStack:
        """Skip the gradient sync of every distributed model whose last replay is not `current`."""
        stack = contextlib.ExitStack()
        for model, final in last_use.values():
            if final != current:
                stack.enter_context(no_gradient_sync(model))
        return stack


@contextlib.contextmanager
def no_gradient_sync(model: nn.Module) -> Iterator[None]:
    """Accumulate gradients locally for one backward: DDP's `no_sync()`, or FSDP2's requires-gradient-sync flag."""
    if isinstance(model, DistributedDataParallel):
        with model.no_sync():
            yield
        return
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)
