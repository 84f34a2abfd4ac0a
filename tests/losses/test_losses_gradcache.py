"""GradCache gives the gradients of the unchunked computation, dropout included."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from uniembed.errors import InputError
from uniembed.losses import GradCache, NegativeFilters, RandomState, Temperature, contrastive_loss, split_batch


pytestmark = pytest.mark.usefixtures("one_thread")


class Tower(nn.Module):
    """A tiny encoder with dropout in two places (MLP and a transformer layer)."""

    def __init__(self, dim: int = 12) -> None:
        super().__init__()
        self.inp = nn.Linear(10, dim)
        self.drop = nn.Dropout(0.3)
        self.layer = nn.TransformerEncoderLayer(dim, nhead=2, dim_feedforward=24, dropout=0.2, batch_first=True)
        self.out = nn.Linear(dim, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: B x T x 10
        hidden = self.layer(self.drop(self.inp(x)))
        return self.out(hidden.mean(dim=1))


def make_inputs(batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    queries = torch.randn(batch, 3, 10, generator=g, dtype=torch.float64)
    candidates = torch.randn(batch + 3, 3, 10, generator=g, dtype=torch.float64)  # 3 appended hard negatives
    return queries, candidates


def gradients(*modules: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for m in modules for p in m.parameters()]


def zero(*modules: nn.Module) -> None:
    for module in modules:
        module.zero_grad(set_to_none=True)


def loss_with(temperature):
    def loss_fn(query, candidates, **kwargs):
        return contrastive_loss(query, candidates, temperature=temperature(),
                                filters=NegativeFilters(top_k=4, hardness_alpha=2.0, symmetric=True), **kwargs)
    return loss_fn


def chunked_reference(encoders, inputs, loss_fn, chunk_size, seed):
    """Embed chunk by chunk WITH the graph kept (so dropout draws the same masks as GradCache), one backward."""
    torch.manual_seed(seed)
    embeddings = [
        torch.cat([encode(part) for part in split_batch(x, chunk_size)]) for encode, x in zip(encoders, inputs)
    ]
    loss = loss_fn(*embeddings)
    loss.backward()
    return loss.detach()


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 100])
def test_gradients_equal_reference_with_dropout(chunk_size):
    torch.manual_seed(0)
    query_tower, candidate_tower = Tower().double(), Tower().double()
    temperature = Temperature(0.05, learnable=True).double()
    loss_fn = loss_with(temperature)
    inputs = make_inputs(batch=10)

    expected_loss = chunked_reference([query_tower, candidate_tower], inputs, loss_fn, chunk_size, seed=7)
    expected = gradients(query_tower, candidate_tower, temperature)
    after_reference = torch.rand(1)
    zero(query_tower, candidate_tower, temperature)

    torch.manual_seed(7)
    loss = GradCache([query_tower, candidate_tower], loss_fn, chunk_size).step(*inputs)
    after_gradcache = torch.rand(1)

    torch.testing.assert_close(loss, expected_loss)
    for got, want in zip(gradients(query_tower, candidate_tower, temperature), expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert after_gradcache == after_reference  # the step leaves the random stream where the reference does


def test_without_restoring_random_state_dropout_breaks_the_gradients(monkeypatch):
    """Shows the previous test can fail: dropout is live, and replaying with fresh masks gives other grads."""
    torch.manual_seed(0)
    tower = Tower().double()
    temperature = Temperature(0.05)
    inputs = make_inputs(batch=8)
    chunked_reference([tower, tower], inputs, loss_with(temperature), 4, seed=3)
    expected = gradients(tower)
    zero(tower)
    monkeypatch.setattr(RandomState, "restore", lambda self: None)
    torch.manual_seed(3)
    GradCache([tower, tower], loss_with(temperature), 4).step(*inputs)
    assert any(not torch.allclose(got, want) for got, want in zip(gradients(tower), expected))


def test_without_dropout_equals_one_unchunked_forward():
    torch.manual_seed(0)
    tower = Tower().double().eval()  # eval: no dropout, so one whole-batch forward is the reference
    temperature = Temperature(0.05, learnable=True).double()
    inputs = make_inputs(batch=9)
    loss = loss_with(temperature)(tower(inputs[0]), tower(inputs[1]))
    loss.backward()
    expected = gradients(tower, temperature)
    zero(tower, temperature)
    got_loss = GradCache([tower, tower], loss_with(temperature), 2).step(*inputs)
    torch.testing.assert_close(got_loss, loss.detach())
    for got, want in zip(gradients(tower, temperature), expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_chunk_size_none_is_the_plain_step_and_loss_kwargs_are_forwarded():
    torch.manual_seed(0)
    tower = Tower().double()
    temperature = Temperature(0.05)
    inputs = make_inputs(batch=6)
    positive = torch.tensor([5, 4, 3, 2, 1, 0])
    torch.manual_seed(1)
    loss = loss_with(temperature)(tower(inputs[0]), tower(inputs[1]), positive=positive)
    loss.backward()
    expected = gradients(tower)
    zero(tower)
    torch.manual_seed(1)
    got = GradCache([tower, tower], loss_with(temperature), None).step(*inputs, positive=positive)
    torch.testing.assert_close(got, loss.detach())
    for a, b in zip(gradients(tower), expected):
        torch.testing.assert_close(a, b)


def plain_step_gradients(chunk_size, batch):
    """A dropout-free tower, temperature and inputs, and the gradients of GradCache's default step (then zeroed)."""
    torch.manual_seed(0)
    tower = Tower().double().eval()
    temperature = Temperature(0.05, learnable=True).double()
    inputs = make_inputs(batch=batch)
    GradCache([tower, tower], loss_with(temperature), chunk_size).step(*inputs)
    expected = gradients(tower, temperature)
    zero(tower, temperature)
    return tower, temperature, inputs, expected


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_scale_loss_scales_every_gradient(chunk_size):
    tower, temperature, inputs, expected = plain_step_gradients(chunk_size, batch=6)
    loss = GradCache([tower, tower], loss_with(temperature), chunk_size, scale_loss=lambda l: 8.0 * l).step(*inputs)
    for got, want in zip(gradients(tower, temperature), expected):
        torch.testing.assert_close(got, 8.0 * want)
    assert loss.requires_grad is False


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_custom_backward_runs_every_model_backward_and_marks_the_last(chunk_size):
    """`backward=` (DeepSpeed's `engine.backward`) receives scalars whose gradients are the plain step's, one per
    replayed chunk of every encoder, the step's last one flagged."""
    tower, temperature, inputs, expected = plain_step_gradients(chunk_size, batch=5)
    calls = []

    def backward(scalar, last):
        assert scalar.dim() == 0
        calls.append(last)
        scalar.backward()

    GradCache([tower, tower], loss_with(temperature), chunk_size, backward=backward).step(*inputs)
    for got, want in zip(gradients(tower, temperature), expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    chunks = 1 if chunk_size is None else 3 + 4  # 5 queries and 8 candidates in chunks of 2
    assert calls == [False] * (chunks - 1) + [True]


def test_dict_batches_and_custom_split_fn():
    torch.manual_seed(0)
    tower = Tower().double().eval()
    encode = lambda batch: tower(batch["x"]) * batch["scale"]  # noqa: E731
    inputs = make_inputs(batch=5)
    batches = [{"x": inputs[0], "scale": 2.0}, {"x": inputs[1], "scale": 2.0}]
    loss_fn = loss_with(Temperature(0.1))
    loss_fn(encode(batches[0]), encode(batches[1])).backward()
    expected = gradients(tower)
    zero(tower)
    seen = []

    def split_in_two(batch, chunk_size):
        seen.append(chunk_size)
        half = batch["x"].shape[0] // 2
        return [{"x": batch["x"][:half], "scale": 2.0}, {"x": batch["x"][half:], "scale": 2.0}]

    GradCache([encode, encode], loss_fn, 2, split_fn=split_in_two).step(*batches)
    assert seen == [2, 2]
    for a, b in zip(gradients(tower), expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_split_batch_shapes():
    items = ["a", "b", "c", "d", "e"]
    assert split_batch(items, 2) == [["a", "b"], ["c", "d"], ["e"]]
    chunks = split_batch({"ids": torch.arange(5), "mask": torch.ones(5, 2), "texts": items, "flag": True}, 3)
    assert [c["ids"].tolist() for c in chunks] == [[0, 1, 2], [3, 4]]
    assert chunks[1]["texts"] == ["d", "e"] and chunks[1]["mask"].shape == (2, 2) and chunks[1]["flag"] is True
    with pytest.raises(ValueError, match="same first dimension") as caught:
        split_batch({"a": torch.ones(3), "b": torch.ones(4)}, 2)
    assert not isinstance(caught.value, InputError)  # programmer misuse of a tensor API, not users' data
    with pytest.raises(TypeError, match="split_fn"):
        split_batch(object(), 2)
    with pytest.raises(ValueError, match="positive integer"):
        split_batch(items, 0)


def test_step_checks_its_inputs():
    tower = Tower()
    with pytest.raises(TypeError, match="2 encoders but step\\(\\) got 1"):
        GradCache([tower, tower], loss_with(Temperature(0.1)), 2).step(torch.randn(4, 3, 10))
    with pytest.raises(ValueError, match="chunk_size"):
        GradCache([tower], loss_with(Temperature(0.1)), 0)
