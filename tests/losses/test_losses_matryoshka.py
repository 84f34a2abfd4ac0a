"""Matryoshka loss: a weighted sum over re-normalised prefixes, with GradCache gradients equal to the plain ones."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from uniembed.losses import GradCache, NegativeFilters, Temperature, contrastive_loss, relational_distillation_loss
from uniembed.losses.matryoshka import matryoshka_loss, truncate

DIMS, WEIGHTS = [8, 5, 2], [1.0, 0.5, 2.0]


pytestmark = pytest.mark.usefixtures("one_thread")


def pair(seed: int = 0, batch: int = 6, extra: int = 2, dim: int = 8):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, dim, generator=g, dtype=torch.float64),
            torch.randn(batch + extra, dim, generator=g, dtype=torch.float64))


def infonce(temperature: float = 0.05):
    return lambda q, c: contrastive_loss(q, c, temperature=temperature, filters=NegativeFilters(top_k=3, symmetric=True))


def test_truncation_is_renormalised_slicing():
    vectors = F.normalize(pair()[0], dim=-1)
    cut = truncate(vectors, 3, True)
    torch.testing.assert_close(cut, vectors[:, :3] / vectors[:, :3].norm(dim=-1, keepdim=True))
    torch.testing.assert_close(cut.norm(dim=-1), torch.ones(len(vectors), dtype=torch.float64))
    torch.testing.assert_close(truncate(vectors, 3, False), vectors[:, :3])
    assert truncate(vectors, 8, True) is vectors  # the full width is no cut


def test_equals_a_hand_loop_over_dims():
    queries, candidates = pair()
    expected = sum(w * infonce()(F.normalize(queries[:, :d], dim=-1), F.normalize(candidates[:, :d], dim=-1))
                   for d, w in zip(DIMS, WEIGHTS))
    torch.testing.assert_close(matryoshka_loss(infonce(), queries, candidates, DIMS, WEIGHTS), expected)
    # weights default to 1, and the cut widths matter (a loss on the full width alone differs)
    unweighted = sum(infonce()(queries[:, :d], candidates[:, :d]) for d in DIMS)
    torch.testing.assert_close(matryoshka_loss(infonce(), queries, candidates, DIMS), unweighted)
    assert not torch.isclose(matryoshka_loss(infonce(), queries, candidates, [8]), unweighted)


def test_relational_distillation_under_matryoshka():
    queries, candidates = pair(extra=0)
    teacher_q, teacher_c = pair(seed=1, extra=0, dim=4)

    def loss_fn(q, c):
        return relational_distillation_loss(q, c, teacher_q, teacher_c, 0.02)

    expected = sum(w * loss_fn(queries[:, :d], candidates[:, :d]) for d, w in zip(DIMS, WEIGHTS))
    torch.testing.assert_close(matryoshka_loss(loss_fn, queries, candidates, DIMS, WEIGHTS), expected)


def test_checks_its_inputs():
    queries, candidates = pair()
    with pytest.raises(ValueError, match="at least one"):
        matryoshka_loss(infonce(), queries, candidates, [])
    with pytest.raises(ValueError, match="2 dims but 1 weights"):
        matryoshka_loss(infonce(), queries, candidates, [8, 4], [1.0])
    with pytest.raises(ValueError, match=r"1\.\.8"):
        matryoshka_loss(infonce(), queries, candidates, [16, 4])


class Tower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp, self.out = nn.Linear(10, 16), nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.inp(x)))


@pytest.mark.parametrize("chunk_size", [1, 4])
def test_gradcache_gradients_equal_the_unchunked_computation(chunk_size):
    torch.manual_seed(0)
    tower = Tower().double()
    temperature = Temperature(0.05, learnable=True).double()
    g = torch.Generator().manual_seed(3)
    queries, candidates = torch.randn(7, 10, generator=g, dtype=torch.float64), torch.randn(9, 10, generator=g, dtype=torch.float64)

    def infonce_at(q, c):
        return contrastive_loss(q, c, temperature=temperature())

    def loss_fn(q, c):
        return matryoshka_loss(infonce_at, q, c, DIMS, WEIGHTS)

    q_all, c_all = tower(queries), tower(candidates)  # the plain reference: one forward, a hand loop over dims
    expected_loss = sum(w * infonce_at(F.normalize(q_all[:, :d], dim=-1), F.normalize(c_all[:, :d], dim=-1))
                        for d, w in zip(DIMS, WEIGHTS))
    expected_loss.backward()
    expected = [p.grad.clone() for p in [*tower.parameters(), *temperature.parameters()]]
    for p in [*tower.parameters(), *temperature.parameters()]:
        p.grad = None
    loss = GradCache([tower, tower], loss_fn, chunk_size).step(queries, candidates)
    torch.testing.assert_close(loss, expected_loss.detach())
    for got, want in zip([p.grad for p in [*tower.parameters(), *temperature.parameters()]], expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
