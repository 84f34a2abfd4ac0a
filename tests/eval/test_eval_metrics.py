"""ranking_metrics / topk_metrics against values computed by hand from benchmarks.md's definitions."""
from math import log2

import numpy as np
import pytest

from uniembed.errors import InputError
from uniembed.eval.metrics import first_relevant_ranks, rank_summary, ranking_metrics, topk_metrics


def test_binary_two_queries_by_hand():
    # q0: gold (index 0) ranked 1st; q1: gold (index 0) has the lowest score, so rank 3.
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.3]])
    m = ranking_metrics(scores, [{0: 1}, {0: 1}], ks=(1, 5))
    assert m["hit@1"] == pytest.approx(0.5)
    assert m["hit@5"] == pytest.approx(1.0)
    assert m["recall@1"] == pytest.approx(0.5)
    assert m["precision@1"] == pytest.approx(0.5)
    assert m["precision@5"] == pytest.approx((1 / 5 + 1 / 5) / 2)
    assert m["mrr@5"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / log2(4)) / 2)
    assert m["map@5"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["mrr@1"] == pytest.approx(0.5)


def test_graded_relevance_by_hand():
    # ranking is 0, 1, 2, 3; candidate 1 has relevance 3 (rank 2), candidate 3 relevance 1 (rank 4).
    scores = np.array([[0.9, 0.8, 0.7, 0.6]])
    m = ranking_metrics(scores, [{1: 3.0, 3: 1.0}], ks=(1, 2, 5))
    dcg = 3 / log2(3) + 1 / log2(5)
    idcg = 3 / log2(2) + 1 / log2(3)
    assert m["ndcg@5"] == pytest.approx(dcg / idcg)
    assert m["ndcg@2"] == pytest.approx((3 / log2(3)) / idcg)
    assert m["ndcg@1"] == 0.0
    assert m["map@5"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert m["map@2"] == pytest.approx((1 / 2) / 2)
    assert m["recall@2"] == pytest.approx(0.5) and m["recall@5"] == pytest.approx(1.0)
    assert m["precision@2"] == pytest.approx(0.5)
    assert m["mrr@5"] == pytest.approx(0.5) and m["hit@1"] == 0.0


def test_map_divides_by_min_of_k_and_relevant():
    # three relevant candidates, the top one relevant: AP@1 = 1 / min(1, 3) = 1
    scores = np.array([[0.9, 0.8, 0.7, 0.1]])
    m = ranking_metrics(scores, [{0: 1, 1: 1, 3: 1}], ks=(1, 2, 3))
    assert m["map@1"] == pytest.approx(1.0)
    assert m["map@2"] == pytest.approx(1.0)
    assert m["map@3"] == pytest.approx((1 + 1) / 3)


def test_ties_are_broken_by_candidate_order():
    scores = np.full((2, 3), 0.5)
    m = ranking_metrics(scores, [{0: 1}, {2: 1}], ks=(1, 3))
    assert m["hit@1"] == pytest.approx(0.5)  # query 0's gold is first in order, query 1's is last
    assert m["mrr@3"] == pytest.approx((1 + 1 / 3) / 2)
    assert list(first_relevant_ranks(scores, [{0: 1}, {2: 1}])) == [1, 3]


def test_perfect_ranking_scores_100_and_reversed_scores_0():
    scores = np.array([[0.9, 0.1, 0.0], [0.8, 0.3, 0.2]])
    perfect = ranking_metrics(scores, [{0: 1}, {0: 1}], ks=(1,))
    assert all(perfect[f"{name}@1"] == 1.0 for name in ("hit", "recall", "precision", "mrr", "ndcg", "map"))
    worst = ranking_metrics(scores, [{2: 1}, {2: 1}], ks=(1, 2))
    assert all(value == 0.0 for value in worst.values())


def test_topk_variant_matches_dense_and_handles_padding():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(20, 30))
    qrels = [{int(c): float(rng.integers(1, 4)) for c in rng.choice(30, size=rng.integers(1, 5), replace=False)}
             for _ in range(20)]
    dense = ranking_metrics(scores, qrels, ks=(1, 5, 10))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    assert topk_metrics(top, qrels, ks=(1, 5, 10)) == pytest.approx(dense)
    padded = np.array([[2, -1, -1]])
    m = topk_metrics(padded, [{2: 1.0}], ks=(1, 3))
    assert m["hit@1"] == 1.0 and m["precision@3"] == pytest.approx(1 / 3)


def test_median_rank():
    scores = np.array([[0.1, 0.9], [0.9, 0.1], [0.5, 0.6]])
    ranks = first_relevant_ranks(scores, [{0: 1}, {0: 1}, {0: 1}])
    assert list(ranks) == [2, 1, 2]
    assert rank_summary(ranks) == {"median_rank": 2.0, "mean_rank": pytest.approx(5 / 3)}


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError, match="candidate 5"):
        ranking_metrics(np.zeros((1, 3)), [{5: 1}])
    with pytest.raises(InputError, match="qrels"):
        ranking_metrics(np.zeros((2, 3)), [{0: 1}])
    with pytest.raises(InputError, match="Q x C"):
        ranking_metrics(np.zeros(3), [{0: 1}])
    with pytest.raises(InputError, match="ks"):
        ranking_metrics(np.zeros((1, 3)), [{0: 1}], ks=(0,))


def test_non_positive_relevance_is_ignored():
    m = ranking_metrics(np.array([[0.9, 0.1]]), [{0: 0.0, 1: 1.0}], ks=(1,))
    assert m["hit@1"] == 0.0
