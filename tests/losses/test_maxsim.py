"""MaxSim equals a hand-computed loop over ragged token lists, ignores padding garbage, and has gradients."""
import numpy as np
import torch

from uniembed.losses.maxsim import maxsim, pad_tokens


def loop_maxsim(queries, documents):
    scores = np.zeros((len(queries), len(documents)))
    for q, query in enumerate(queries):
        for c, document in enumerate(documents):
            total = 0.0
            for token in query:
                total += max((float(np.dot(token, other)) for other in document), default=0.0)
            scores[q, c] = total
    return scores


def ragged(rng, counts, dim=5):
    return [rng.standard_normal((count, dim)) for count in counts]


def test_maxsim_equals_a_loop_over_ragged_tokens():
    rng = np.random.default_rng(0)
    queries, documents = ragged(rng, [3, 1, 4]), ragged(rng, [2, 6, 1, 0])
    q, q_mask = pad_tokens(queries, dtype=torch.float64)
    d, d_mask = pad_tokens(documents, dtype=torch.float64)
    np.testing.assert_allclose(maxsim(q, q_mask, d, d_mask).numpy(), loop_maxsim(queries, documents), rtol=1e-12)


def test_padding_garbage_never_leaks():
    rng = np.random.default_rng(1)
    queries, documents = ragged(rng, [2, 3]), ragged(rng, [4, 2])
    q, q_mask = pad_tokens(queries, dtype=torch.float64)
    d, d_mask = pad_tokens(documents, dtype=torch.float64)
    clean = maxsim(q, q_mask, d, d_mask)
    q[~q_mask], d[~d_mask] = float("nan"), 1e6
    torch.testing.assert_close(maxsim(q, q_mask, d, d_mask), clean)


def test_gradients_reach_only_the_maximising_tokens():
    q = torch.tensor([[[1.0, 0.0]]], requires_grad=True)
    d = torch.tensor([[[0.5, 0.0], [2.0, 1.0], [9.0, 9.0]]], requires_grad=True)
    score = maxsim(q, torch.tensor([[True]]), d, torch.tensor([[True, True, False]]))
    score.sum().backward()
    assert score.item() == 2.0
    torch.testing.assert_close(d.grad, torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]))
