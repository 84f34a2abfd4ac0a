"""contrastive_loss against a slow, explicit per-query loop written from the formula in docs/methods.md §2."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from uniembed.errors import InputError
from uniembed.losses import NegativeFilters, contrastive_loss, contrastive_loss_per_query

B, N, D = 5, 9, 6  # 5 queries, their 5 positives + 4 appended hard negatives


def reference_loss(
    query,
    candidates,
    positive,
    temperature,
    target_modality=None,
    candidate_modality=None,
    margin=None,
    alpha=None,
    top_k=None,
    symmetric=False,
):
    """One query at a time, one candidate at a time, no log-sum-exp: the formula as written."""
    q = [row / torch.sqrt((row * row).sum()) for row in query]
    c = [row / torch.sqrt((row * row).sum()) for row in candidates]
    total = 0
    for i in range(len(q)):
        tau = temperature[i] if isinstance(temperature, torch.Tensor) and temperature.dim() == 1 else temperature
        p = int(positive[i])
        s = [(q[i] * c[j]).sum() for j in range(len(c))]
        negatives = [j for j in range(len(c)) if j != p]
        if candidate_modality is not None:
            target = int(target_modality[i]) if target_modality is not None else int(candidate_modality[p])
            negatives = [j for j in negatives if int(candidate_modality[j]) == target]
        if margin is not None:
            negatives = [j for j in negatives if float(s[j].detach()) <= float(s[p].detach()) + margin]
        if top_k is not None:
            negatives = sorted(negatives, key=lambda j: float(s[j].detach()), reverse=True)[:top_k]
        numerator = torch.exp(s[p] / tau)
        denominator = numerator
        for j in negatives:
            weight = math.exp(alpha * float(s[j].detach())) if alpha is not None else 1.0
            denominator = denominator + weight * torch.exp(s[j] / tau)
        loss_i = -torch.log(numerator / denominator)
        if symmetric:
            to_queries = [(q[k] * c[p]).sum() for k in range(len(q))]
            reverse = -torch.log(torch.exp(to_queries[i] / tau) / sum(torch.exp(x / tau) for x in to_queries))
            loss_i = (loss_i + reverse) / 2
        total = total + loss_i
    return total / len(q)


def make_batch(seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(B, D, generator=generator, dtype=dtype)
    candidates = torch.randn(N, D, generator=generator, dtype=dtype)
    candidates[:B] += 1.5 * query  # positives look like their queries, so some negatives beat others clearly
    positive = torch.tensor([0, 1, 2, 3, 4])
    candidate_modality = torch.tensor([1, 2, 3, 2, 1, 2, 1, 3, 2])
    return query, candidates, positive, candidate_modality


def temperature_of(kind):
    if kind == "float":
        return 0.1
    if kind == "scalar":
        return torch.tensor(0.07, dtype=torch.float64, requires_grad=True)
    return torch.tensor([0.05, 0.1, 0.2, 0.08, 0.3], dtype=torch.float64, requires_grad=True)


OPTIONS = ["modality", "margin", "top_k", "alpha", "symmetric"]
COMBINATIONS = [dict(zip(OPTIONS, bits)) for bits in itertools.product([False, True], repeat=len(OPTIONS))]


def keyword_arguments(options, candidate_modality):
    return dict(
        candidate_modality=candidate_modality if options["modality"] else None,
        filters=NegativeFilters(
            false_negative_margin=0.05 if options["margin"] else None,
            top_k=2 if options["top_k"] else None,
            hardness_alpha=3.0 if options["alpha"] else None,
            symmetric=options["symmetric"],
        ),
    )


@pytest.mark.parametrize("kind", ["float", "scalar", "per_query"])
@pytest.mark.parametrize("options", COMBINATIONS, ids=lambda o: "+".join(k for k, v in o.items() if v) or "plain")
def test_value_and_gradients_match_explicit_loop(options, kind):
    query, candidates, positive, candidate_modality = make_batch(seed=len(str(options)))
    kwargs = keyword_arguments(options, candidate_modality)

    results = []
    for implementation in ("fast", "loop"):
        q = query.clone().requires_grad_()
        c = candidates.clone().requires_grad_()
        temperature = temperature_of(kind)
        if implementation == "fast":
            loss = contrastive_loss(q, c, positive, temperature=temperature, **kwargs)
        else:
            loss = reference_loss(
                q,
                c,
                positive,
                temperature,
                candidate_modality=kwargs["candidate_modality"],
                margin=kwargs["filters"].false_negative_margin,
                alpha=kwargs["filters"].hardness_alpha,
                top_k=kwargs["filters"].top_k,
                symmetric=kwargs["filters"].symmetric,
            )
        loss.backward()
        grads = [q.grad, c.grad] + ([temperature.grad] if isinstance(temperature, torch.Tensor) else [])
        results.append((loss.detach(), grads))

    (fast_loss, fast_grads), (loop_loss, loop_grads) = results
    torch.testing.assert_close(fast_loss, loop_loss, rtol=1e-10, atol=1e-12)
    for fast, loop in zip(fast_grads, loop_grads):
        torch.testing.assert_close(fast, loop, rtol=1e-9, atol=1e-12)


def test_options_change_the_loss():
    """Each option really acts on this batch (so the comparison above is not vacuous)."""
    query, candidates, positive, candidate_modality = make_batch(seed=3)
    plain = contrastive_loss(query, candidates, positive, temperature=0.1)
    for options in COMBINATIONS[1:]:
        if options["symmetric"] or sum(options.values()) != 1:
            continue
        changed = contrastive_loss(
            query, candidates, positive, temperature=0.1, **keyword_arguments(options, candidate_modality)
        )
        assert abs(float(changed - plain)) > 1e-4, options


def test_explicit_target_modality_overrides_the_positives_modality():
    query, candidates, positive, candidate_modality = make_batch(seed=5)
    target = torch.tensor([2, 2, 2, 2, 2])
    loss = contrastive_loss(
        query, candidates, positive, temperature=0.1, target_modality=target, candidate_modality=candidate_modality
    )
    expected = reference_loss(
        query, candidates, positive, 0.1, target_modality=target, candidate_modality=candidate_modality
    )
    torch.testing.assert_close(loss, expected)


def test_hand_computed_value():
    # q = e1; candidates e1 (positive) and e2 (orthogonal): loss = -log(e^(1/t) / (e^(1/t) + e^0)).
    query = torch.tensor([[2.0, 0.0]])
    candidates = torch.tensor([[3.0, 0.0], [0.0, 5.0]])
    loss = contrastive_loss(query, candidates, temperature=0.5)
    assert float(loss) == pytest.approx(math.log(1 + math.exp(-2.0)), rel=1e-6)
    weighted = contrastive_loss(query, candidates, temperature=0.5, filters=NegativeFilters(hardness_alpha=9.0))
    assert float(weighted) == pytest.approx(math.log(1 + math.exp(-2.0)), rel=1e-6)  # w = exp(9 * 0) = 1


def test_default_positive_is_the_diagonal_and_hard_negatives_are_appended():
    query, candidates, _, _ = make_batch(seed=7)
    default = contrastive_loss(query, candidates, temperature=0.1)
    explicit = contrastive_loss(query, candidates, torch.arange(B), temperature=0.1)
    torch.testing.assert_close(default, explicit)
    without_appended = contrastive_loss(query, candidates[:B], temperature=0.1)
    assert float(default) > float(without_appended)  # more negatives, larger loss


def test_positive_can_point_anywhere():
    query, candidates, _, _ = make_batch(seed=8)
    positive = torch.tensor([8, 0, 3, 3, 6])  # shared and out-of-diagonal positives
    torch.testing.assert_close(
        contrastive_loss(query, candidates, positive, temperature=0.1, filters=NegativeFilters(symmetric=True, top_k=3)),
        reference_loss(query, candidates, positive, 0.1, top_k=3, symmetric=True),
    )


def test_query_without_negatives_has_zero_loss():
    query = torch.randn(2, 4, dtype=torch.float64)
    candidates = torch.randn(2, 4, dtype=torch.float64)
    loss = contrastive_loss(query, candidates, temperature=0.1, candidate_modality=torch.tensor([1, 2]))
    assert float(loss) == 0.0


def test_top_k_larger_than_the_negatives_keeps_them_all():
    query, candidates, positive, _ = make_batch(seed=9)
    torch.testing.assert_close(
        contrastive_loss(query, candidates, positive, temperature=0.1, filters=NegativeFilters(top_k=100)),
        contrastive_loss(query, candidates, positive, temperature=0.1),
    )


def test_embeddings_are_normalised_inside():
    query, candidates, positive, _ = make_batch(seed=10)
    torch.testing.assert_close(
        contrastive_loss(query * 7.0, candidates * 0.01, positive, temperature=0.1),
        contrastive_loss(query, candidates, positive, temperature=0.1),
    )


def test_tiny_temperature_is_stable_in_float32():
    query, candidates, positive, _ = make_batch(seed=11, dtype=torch.float32)
    q = query.clone().requires_grad_()
    loss = contrastive_loss(q, candidates, positive, temperature=1e-4, filters=NegativeFilters(hardness_alpha=9.0, symmetric=True))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(q.grad).all()
    reference = contrastive_loss(query.double(), candidates.double(), positive, temperature=1e-4,
                                 filters=NegativeFilters(hardness_alpha=9.0, symmetric=True))
    assert float(loss.detach()) == pytest.approx(float(reference), rel=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_dtypes(dtype):
    query, candidates, positive, candidate_modality = make_batch(seed=12)
    kwargs = dict(temperature=0.05, candidate_modality=candidate_modality,
                  filters=NegativeFilters(top_k=3, hardness_alpha=2.0, symmetric=True))
    expected = contrastive_loss(query, candidates, positive, **kwargs)
    q = query.to(dtype).requires_grad_()
    c = candidates.to(dtype).requires_grad_()
    loss = contrastive_loss(q, c, positive, **kwargs)
    loss.backward()
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert q.grad.dtype == dtype and torch.isfinite(q.grad.float()).all()
    tolerance = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 5e-2}[dtype]
    assert float(loss.detach()) == pytest.approx(float(expected), rel=tolerance)


def test_per_query_losses_average_to_the_loss():
    query, candidates, positive, _ = make_batch(seed=13)
    per_query = contrastive_loss_per_query(query, candidates, positive, temperature=0.1,
                                           filters=NegativeFilters(symmetric=True))
    assert per_query.shape == (B,)
    torch.testing.assert_close(per_query.mean(), contrastive_loss(query, candidates, positive, temperature=0.1,
                                                                  filters=NegativeFilters(symmetric=True)))


def test_slice_of_gathered_queries_gives_the_same_rows():
    """The local-loss hook: rows 2..4 computed alone against all queries equal those rows of the full batch."""
    query, candidates, positive, _ = make_batch(seed=14)
    filters = NegativeFilters(symmetric=True, top_k=2)
    full = contrastive_loss_per_query(query, candidates, positive, temperature=0.1, filters=filters)
    part = contrastive_loss_per_query(
        query[2:], candidates, positive[2:], temperature=0.1, filters=filters, all_queries=query,
        query_offset=2,
    )
    torch.testing.assert_close(part, full[2:])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda q, c: contrastive_loss(q[0], c, temperature=0.1), "2-D"),
        (lambda q, c: contrastive_loss(q, c[:, :3], temperature=0.1), "dimension"),
        (lambda q, c: contrastive_loss(q, c[:3], temperature=0.1), "only 3 candidates"),
        (lambda q, c: contrastive_loss(q, c, torch.tensor([0, 1, 2, 3, 9]), temperature=0.1), "item 4"),
        (lambda q, c: contrastive_loss(q, c, torch.tensor([0, 1, 2]), temperature=0.1), "shape (5,)"),
        (lambda q, c: contrastive_loss(q, c, temperature=0.0), "positive"),
        (lambda q, c: contrastive_loss(q, c, temperature=torch.ones(3)), "(5,) tensor"),
        (lambda q, c: contrastive_loss(q, c, temperature=0.1, filters=NegativeFilters(top_k=0)), "top_k"),
        (lambda q, c: contrastive_loss(q, c, temperature=0.1, target_modality=torch.ones(5)), "candidate_modality"),
        (lambda q, c: contrastive_loss(q, c, temperature=0.1, candidate_modality=torch.ones(4)), "shape (9,)"),
    ],
)
def test_bad_inputs_raise_input_error(call, message):
    query, candidates, _, _ = make_batch(seed=15)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(query, candidates)
