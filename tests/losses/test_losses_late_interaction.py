"""The late-interaction loss: value and gradients equal a hand loop; GradCache over chunks of different token
lengths gives the gradients of the plain computation."""
import math

import torch

from uniembed.losses import GradCache
from uniembed.losses.late_interaction import late_interaction_loss, token_mask
from uniembed.models.late_interaction import pad_length


def unit_tokens(counts, dim=6, seed=0):
    """Padded unit token vectors (zero rows past each count), float64, requiring grad."""
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randn(len(counts), max(counts), dim, generator=generator, dtype=torch.float64)
    keep = torch.arange(max(counts))[None, :] < torch.tensor(counts)[:, None]
    tokens = torch.where(keep[..., None], torch.nn.functional.normalize(raw, dim=-1), torch.zeros((), dtype=raw.dtype))
    return tokens.requires_grad_()


def loop_loss(queries, docs, query_counts, doc_counts, temperature, normalize):
    """The loss written out: per query, per candidate, sum over its tokens of the best dot product."""
    total = 0
    for q in range(len(query_counts)):
        logits = []
        for c in range(len(doc_counts)):
            score = 0
            for i in range(query_counts[q]):
                score = score + torch.stack([queries[q, i] @ docs[c, j] for j in range(doc_counts[c])]).max()
            logits.append(score / (query_counts[q] if normalize else 1) / temperature)
        logits = torch.stack(logits)
        total = total - (logits[q] - torch.logsumexp(logits, dim=0))
    return total / len(query_counts)


def test_loss_and_gradients_equal_a_hand_loop_with_hard_negatives():
    query_counts, doc_counts = [3, 1, 4], [2, 5, 1, 3, 2]  # 3 positives, then 2 hard negatives
    for normalize in (True, False):
        queries, docs = unit_tokens(query_counts, seed=1), unit_tokens(doc_counts, seed=2)
        loss = late_interaction_loss(queries, docs, temperature=0.05, normalize_scores=normalize)
        q_grad, d_grad = torch.autograd.grad(loss, [queries, docs])
        expected = loop_loss(queries, docs, query_counts, doc_counts, 0.05, normalize)
        e_q, e_d = torch.autograd.grad(expected, [queries, docs])
        assert math.isclose(loss.item(), expected.item(), rel_tol=1e-6)
        torch.testing.assert_close(q_grad, e_q)
        torch.testing.assert_close(d_grad, e_d)


def test_masks_come_from_zero_rows_and_explicit_masks_agree():
    queries, docs = unit_tokens([2, 4]), unit_tokens([3, 1, 2], seed=3)
    assert token_mask(queries).sum(dim=1).tolist() == [2, 4]
    implicit = late_interaction_loss(queries, docs)
    explicit = late_interaction_loss(queries, docs, query_mask=token_mask(queries), doc_mask=token_mask(docs))
    torch.testing.assert_close(implicit, explicit)


class TokenEncoder(torch.nn.Module):
    """A toy multi-vector encoder: rows of token ids (0 = padding) -> unit token vectors, zero at padding,
    padded to `pad_to` so chunks of different lengths concatenate (what the objective does)."""

    def __init__(self, pad_to: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(20, 8)
        self.proj = torch.nn.Linear(8, 4)
        self.pad_to = pad_to

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids[:, : int((ids != 0).sum(dim=1).max())]  # each chunk as long as its longest row
        tokens = torch.nn.functional.normalize(self.proj(self.embed(ids)), dim=-1)
        tokens = torch.where((ids != 0)[..., None], tokens, torch.zeros(()))
        return pad_length(tokens, self.pad_to)


def test_gradcache_over_chunks_of_different_lengths_equals_the_plain_step():
    torch.manual_seed(0)
    counts = [1, 6, 2, 3, 5, 2, 4, 1, 3, 2]  # 4 queries, 4 positives, 2 hard negatives
    ids = torch.zeros(len(counts), max(counts), dtype=torch.long)
    for row, count in enumerate(counts):
        ids[row, :count] = torch.randint(1, 20, (count,))
    model = TokenEncoder(pad_to=max(counts)).train()

    def loss_fn(tokens):
        return late_interaction_loss(tokens[:4], tokens[4:], temperature=0.1)

    grads = []
    for chunk in (None, 3):
        model.zero_grad()
        torch.manual_seed(7)
        loss = GradCache([model], loss_fn, chunk).step(ids)
        grads.append((float(loss), [p.grad.clone() for p in model.parameters()]))
    (plain_loss, plain), (cached_loss, cached) = grads
    assert math.isclose(plain_loss, cached_loss, rel_tol=1e-5)
    for a, b in zip(plain, cached):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-4)
