"""Fusion at evaluation: cos + w * P_yes over each query's top K, w chosen on validation and never on test."""
from __future__ import annotations

import json

import numpy as np
import pytest

from uniembed import ConfigError, Item
from uniembed.data.examples import EvalTask
from uniembed.eval.rerank import evaluate_reranked, fused_ranking, score_shortlists, shortlist


class TableEncoder:
    """Embeds an item by looking its text up in a table (known cosines)."""

    model_id = "table-encoder"

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode(self, items, batch_size=32):
        return np.stack([self.vectors[item.text] for item in items]).astype(np.float32)


class TableReranker:
    model_id = "table-reranker"

    def __init__(self, p_yes: dict[tuple[str, str], float]) -> None:
        self.p_yes = p_yes
        self.calls = 0

    def score_pairs(self, pairs, batch_size=16):
        self.calls += 1
        return np.array([self.p_yes[(q.text, c.text)] for q, c in pairs])


def split(prefix: str, queries: int, cos_gold: float, cos_distractor: float, p_gold: float, p_distractor: float):
    """Queries whose gold and one distractor have the given cosines and P(yes); other queries are orthogonal."""
    dim = 3 * queries
    vectors, p_yes, candidates, qrels = {}, {}, [], []
    for i in range(queries):
        q, gold, distractor = f"{prefix}q{i}", f"{prefix}gold{i}", f"{prefix}distractor{i}"
        vectors[q] = np.eye(dim)[3 * i]
        vectors[gold] = cos_gold * np.eye(dim)[3 * i] + np.sqrt(1 - cos_gold ** 2) * np.eye(dim)[3 * i + 1]
        vectors[distractor] = cos_distractor * np.eye(dim)[3 * i] + np.sqrt(1 - cos_distractor ** 2) * np.eye(dim)[3 * i + 2]
        candidates += [Item(text=distractor), Item(text=gold)]
        qrels.append({2 * i + 1: 1.0})
        for j in range(queries):
            p_yes[(q, f"{prefix}gold{j}")] = p_gold if i == j else 0.0
            p_yes[(q, f"{prefix}distractor{j}")] = p_distractor if i == j else 0.0
    task = EvalTask(name="retrieval", queries=[Item(text=f"{prefix}q{i}") for i in range(queries)],
                    candidates=candidates, qrels=qrels, meta_task="retrieval")
    return task, vectors, p_yes


def test_fusion_weight_is_chosen_on_validation_even_when_test_prefers_another(tmp_path):
    # validation: the re-ranker fixes the first stage (gold wins once 0.7 + 0.9w > 0.8 + 0.1w, i.e. w > 0.125)
    val_task, val_vectors, val_p = split("val-", 4, cos_gold=0.7, cos_distractor=0.8, p_gold=0.9, p_distractor=0.1)
    # test: the first stage is right and the re-ranker is wrong, so the best test weight would be 0
    test_task, test_vectors, test_p = split("test-", 4, cos_gold=0.8, cos_distractor=0.7, p_gold=0.1, p_distractor=0.9)
    encoder = TableEncoder({**val_vectors, **test_vectors})
    reranker = TableReranker({**val_p, **test_p})
    evaluation = evaluate_reranked(encoder, reranker, "synthetic", tmp_path, tmp_path / "out", tasks=[test_task],
                                   val_tasks=[val_task], weights=(0.0, 0.1, 0.25, 1.0), top_k=5, progress=False)
    options = evaluation.payload["options"]
    assert options["weight"] == 0.25 and options["weight_source"] == "validation"  # smallest w that is best on val
    assert options["val_overall_by_weight"] == {"0.0": 0.0, "0.1": 0.0, "0.25": 100.0, "1.0": 100.0}
    assert evaluation.payload["first_stage"]["overall"] == 100.0
    assert evaluation.payload["scores"]["retrieval"] == 0.0  # the val weight is applied on test, however it does there
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["options"]["weight"] == 0.25 and saved["first_stage"]["scores"] == {"retrieval": 100.0}


def test_given_weight_skips_validation_and_no_weight_is_an_error(tmp_path):
    task, vectors, p_yes = split("", 3, cos_gold=0.7, cos_distractor=0.8, p_gold=0.9, p_distractor=0.1)
    encoder, reranker = TableEncoder(vectors), TableReranker(p_yes)
    evaluation = evaluate_reranked(encoder, reranker, "synthetic", tmp_path, tasks=[task], weight=1.0, progress=False)
    assert evaluation.payload["options"]["weight_source"] == "given"
    assert evaluation.payload["scores"]["retrieval"] == 100.0 and reranker.calls == 1
    with pytest.raises(ConfigError, match="validation split"):
        evaluate_reranked(encoder, reranker, "synthetic", tmp_path, tasks=[task], progress=False)


def test_only_the_top_k_are_reordered_and_the_tail_keeps_cosine_order():
    task, vectors, _ = split("", 2, cos_gold=0.7, cos_distractor=0.8, p_gold=0.9, p_distractor=0.1)
    (sl,), _ = shortlist(TableEncoder(vectors), [task], top_k=3, progress=False)
    # query 0 by cosine: distractor0 (0.8), gold0 (0.7), then the orthogonal candidates in pool order
    assert list(sl.candidates[0, :4]) == [0, 1, 2, 3]
    p = {("q0", "distractor0"): 0.1, ("q0", "gold0"): 0.2, ("q0", "distractor1"): 1.0, ("q0", "gold1"): 0.0,
         ("q1", "distractor1"): 0.0, ("q1", "gold1"): 0.0, ("q1", "distractor0"): 0.0, ("q1", "gold0"): 0.0}
    score_shortlists(TableReranker(p), [sl])
    np.testing.assert_allclose(sl.p_yes[0], [0.1, 0.2, 1.0])
    # fused top 3 of query 0: 0.8 + 0.1w, 0.7 + 0.2w, 0.0 + 1.0w; index 3 stays last (outside the top K)
    assert list(fused_ranking(sl, 0.5)[0]) == [0, 1, 2, 3]
    assert list(fused_ranking(sl, 0.95)[0]) == [2, 0, 1, 3]  # 0.95 > 0.895 > 0.89
    assert list(fused_ranking(sl, 2.0)[0]) == [2, 1, 0, 3]  # 2.0 > 1.1 > 1.0
