"""uniembed.Reranker: P(yes) from the LM head at the first answer token, the pair prompt, batch invariance,
save/load, the serving endpoint."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import draw_scene
from fastapi.testclient import TestClient

from uniembed import ConfigError, Embedder, Item, Reranker
from uniembed.models.reranker import RerankerConfig


@pytest.fixture(scope="module")
def reranker():
    torch.set_num_threads(1)
    return Reranker.tiny(seed=0)


PAIRS = [
    ("a red circle", "a red circle number 3"),
    (Item(text="which circle is red", instruction="Find the caption"), "a blue square"),
    ("the blue square", Item(image=draw_scene("blue", "square"))),
    (Item(image=draw_scene("red")), Item(text="a red circle", image=draw_scene("green"))),
    ("x", "a much longer candidate text with many more words than the query has in it at all"),
]


def test_p_yes_is_the_two_way_softmax_of_the_lm_head_at_the_last_prompt_token(reranker):
    query, candidate = "a red circle", "a red circle number 3"
    batch = reranker.collate([reranker.decode_pair(Item(text=query), Item(text=candidate))])
    # independent path: transformers' own forward of the full model, its own positions and causal mask
    with torch.no_grad():
        logits = reranker.backbone.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    tokenizer = reranker.backbone.tokenizer
    yes, no = tokenizer.convert_tokens_to_ids("Yes"), tokenizer.convert_tokens_to_ids("No")
    a, b = float(logits[0, -1, yes]), float(logits[0, -1, no])
    expected = np.exp(a) / (np.exp(a) + np.exp(b))
    score = reranker.score(query, [candidate])
    assert score.shape == (1,) and score.dtype == np.float32
    assert score[0] == pytest.approx(expected, abs=1e-5)
    np.testing.assert_allclose(reranker.logits([(query, candidate)])[0], [a, b], atol=1e-4)


def test_scores_are_probabilities_and_batch_invariant(reranker):
    one_by_one = reranker.score_pairs(PAIRS, batch_size=1)
    together = reranker.score_pairs(PAIRS, batch_size=5)
    reversed_order = reranker.score_pairs(PAIRS[::-1], batch_size=3)[::-1]
    assert np.all((one_by_one >= 0) & (one_by_one <= 1))
    np.testing.assert_allclose(together, one_by_one, atol=2e-6)
    np.testing.assert_allclose(reversed_order, one_by_one, atol=2e-6)
    assert len(set(np.round(one_by_one, 6))) > 1  # different pairs, different scores


def test_prompt_places_query_then_candidate_with_their_own_images(reranker):
    query = Item(text="find this", image=draw_scene("red"), instruction="Retrieve a caption")
    candidate = Item(text="a blue square", image=draw_scene("blue", "square"))
    decoded = reranker.decode_pair(query, candidate)
    text = reranker.backbone.tokenizer.decode(reranker.collate([decoded])["input_ids"][0])
    q_at, c_at, question_at = text.index("Query: "), text.index("Candidate: "), text.index("Answer Yes or No.")
    vision = [i for i in range(len(text)) if text.startswith("<|vision_start|>", i)]
    assert len(vision) == 2 and q_at < vision[0] < c_at < vision[1] < question_at  # images first, per side
    assert q_at < text.index("Retrieve a caption") < text.index("find this") < c_at < text.index("a blue square")
    assert text.rstrip().endswith("<|im_start|>assistant")
    assert decoded.images[0].getpixel((36, 32)) == (255, 0, 0)  # the query's image comes first


def test_save_and_load_give_identical_scores(reranker, tmp_path):
    custom = Reranker.from_embedder(Embedder.tiny(seed=1), RerankerConfig(question="Is it relevant? Yes or No."))
    custom.save_pretrained(tmp_path / "rr")
    info = json.loads((tmp_path / "rr" / "uniembed.json").read_text())
    assert info["kind"] == "reranker" and info["extra"]["reranker"]["question"] == "Is it relevant? Yes or No."
    loaded = Reranker.from_pretrained(tmp_path / "rr")
    assert loaded.config == custom.config
    np.testing.assert_array_equal(loaded.score_pairs(PAIRS[:3]), custom.score_pairs(PAIRS[:3]))
    with pytest.raises(ConfigError, match="holds a reranker.*Reranker.from_pretrained"):
        Embedder.from_pretrained(tmp_path / "rr")


def test_an_embedding_checkpoint_loads_as_a_causal_zero_shot_reranker(tmp_path):
    Embedder.tiny(seed=2, attention="bidirectional", pooling="mean").save_pretrained(tmp_path / "emb")
    loaded = Reranker.from_pretrained(tmp_path / "emb")
    assert loaded.template.attention == "causal" and loaded.template.pooling == "last"
    assert 0 <= loaded.score("a", ["b"])[0] <= 1


def test_bad_inputs_are_clear_errors(reranker):
    with pytest.raises(ConfigError, match="'Yes please' is [0-9]+ tokens"):
        Reranker.from_embedder(Embedder.tiny(), RerankerConfig(yes_token="Yes please"))
    with pytest.raises(ConfigError, match="unknown re-ranker option"):
        RerankerConfig.from_dict({"questoin": "?"})
    with pytest.raises(ValueError, match="no candidates"):
        reranker.score("a query", [])
    with pytest.raises(ValueError, match="empty item"):
        reranker.score("a query", [{"text": ""}])


def test_server_reranks_with_p_yes(reranker, tiny_embedder):
    from uniembed.serving import Reranker as RerankerProtocol
    from uniembed.serving import ServerConfig, create_app

    assert isinstance(reranker, RerankerProtocol)
    documents = ["a red circle number 3", "a blue square", "the green thing"]
    expected = reranker.score("a red circle", documents)
    with TestClient(create_app(tiny_embedder, ServerConfig(), reranker=reranker)) as client:
        response = client.post("/v1/rerank", json={"query": "a red circle", "documents": documents})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(np.argsort(-expected, kind="stable"))
    np.testing.assert_allclose([r["relevance_score"] for r in results], np.sort(expected)[::-1], atol=1e-6)
