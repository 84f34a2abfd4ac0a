"""Multi-vector eval (`uniembed eval --multi-vector`): a fixture of "pages" (a colour image plus words) built so
MaxSim ranks them in a known order gives exact metric values, locally and over the pool, pooled or not."""
from __future__ import annotations

import json

import numpy as np
import pytest
from eval_fakes import DIM, FakeEncoder, colour_image, colour_name, word_slot

from uniembed.data.examples import EvalTask
from uniembed.eval.evaluate import evaluate
from uniembed.eval.multivector import run_tasks_multi
from uniembed.inputs import Item
from uniembed.media import load_image

WORDS = ("red", "blue", "green", "circle", "square", "big")


class FakeLateInteraction(FakeEncoder):
    """One one-hot token per word and per image (its colour word): MaxSim = distinct query words a page holds."""

    multi_vector_dimension = DIM

    def encode_multi(self, items, batch_size=32, show_progress_bar=None):
        self.calls += 1
        self.encoded.extend(items)
        out = []
        for item in items:
            words = (item.text or "").split() + [colour_name(load_image(s)) for s in item.image_sources]
            tokens = np.zeros((len(words), DIM), np.float32)
            tokens[np.arange(len(words)), [word_slot(w) for w in words]] = 1.0
            out.append(tokens)
        return out


@pytest.fixture()
def pages(tmp_path):
    assert len({word_slot(w) for w in WORDS}) == len(WORDS)  # no two fixture words share a token slot
    red, blue = (str(colour_image(tmp_path / f"{c}.png", c)) for c in ("red", "blue"))
    return [Item(image=red, text="circle"),             # d0: red circle
            Item(image=red, text="red square square"),  # d1: red square (each word twice, with the image)
            Item(image=blue, text="circle"),            # d2: blue circle
            Item(image=red, text="circle circle big"),  # d3: red circle big
            Item(text="green")]                         # d4: green


def tasks(pages):
    queries = [Item(text="red circle"), Item(text="blue"), Item(text="green square")]
    # MaxSim: q0 -> [2, 1, 1, 2, 0]: d0 and d3 tie, d0 first (candidate order), so gold d3 ranks 2nd;
    #         q1 -> only d2 holds blue: rank 1; q2 -> d1 and d4 tie at 1, gold d1 first: rank 1
    pool = EvalTask("vidore-like", queries, pages, [{3: 1.0}, {2: 1.0}, {1: 1.0}], metric="ndcg@5",
                    meta_task="retrieval", modality_group="visual-document")
    # local lists: q0 [d4, d1, d3] gold d3 (position 2) scores [0, 1, 2]: rank 1; q1 [d2, d0] gold d2: rank 1;
    #              q2 [d0, d4] gold d0 (position 0) scores [0, 1]: rank 2
    local = EvalTask("local", queries, pages, [{2: 1.0}, {0: 1.0}, {0: 1.0}], candidate_lists=[[4, 1, 3], [2, 0], [0, 4]],
                     meta_task="retrieval", modality_group="visual-document")
    return [pool, local]


def test_multi_vector_scores_are_known_in_advance(pages):
    encoder = FakeLateInteraction()
    pool, local = run_tasks_multi(encoder, tasks(pages), progress=False).tasks
    assert pool.metrics["hit@1"] == pytest.approx(200 / 3) and pool.metrics["mrr@10"] == pytest.approx(250 / 3)
    assert pool.score == pytest.approx(100 * (1 / np.log2(3) + 1 + 1) / 3)  # ndcg@5, one relevant page each
    assert pool.examples[0] == {"query": 0, "top": [0, 3, 1, 2, 4], "gold": [3]}
    assert local.score == pytest.approx(200 / 3) and local.metrics["mrr@10"] == pytest.approx(250 / 3)
    assert local.examples[2] == {"query": 2, "top": [4, 0], "gold": [0]}
    assert len(encoder.encoded) == 3 + 5  # each distinct item once across both tasks


def test_pooling_repeated_tokens_keeps_the_scores_and_evaluate_records_it(pages, tmp_path):
    plain = run_tasks_multi(FakeLateInteraction(), tasks(pages), progress=False).tasks
    evaluation = evaluate(FakeLateInteraction(), "synthetic", tmp_path, tmp_path / "out", tasks=tasks(pages),
                          progress=False, multi_vector_pool=2)
    # factor 2 halves every page: d1 (tokens in identical pairs) and d4 (one token) lose nothing; d0 and d2 merge
    # colour and shape into one mean token (q0: d0 2 -> 1.41), d3 keeps circle and merges big+red (q0: 2 -> 1.71)
    pooled = {result.name: result for result in evaluation.results}
    assert pooled["vidore-like"].examples[0]["top"][:2] == [3, 0]
    assert pooled["vidore-like"].metrics["hit@1"] == 100.0 and plain[0].metrics["hit@1"] == pytest.approx(200 / 3)
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert payload["multi_vector"] == {"pool_factor": 2, "scoring": "maxsim"}
    assert payload["scores"]["local"] == pytest.approx(plain[1].score)


def test_single_vector_models_are_refused(pages):
    with pytest.raises(ValueError, match="late-interaction head"):
        run_tasks_multi(FakeEncoder(), tasks(pages), progress=False)


def test_eval_cli_multi_vector_on_a_tiny_late_interaction_model(tmp_path, capsys):
    from eval_fakes import one_task_eval_args

    from uniembed import Embedder
    from uniembed.cli.main import main

    args = one_task_eval_args(tmp_path, Embedder.tiny(seed=0, multi_vector_dim=16))
    assert main([*args, "--multi-vector", "--pool-factor", "2"]) == 0
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert payload["multi_vector"]["pool_factor"] == 2 and set(payload["scores"]) == {"t1"}
    assert main(["eval", "--model", "tiny", *args[3:], "--multi-vector"]) == 2
    assert "late-interaction head" in capsys.readouterr().err
    assert main([*args, "--multi-vector", "--processes", "2"]) == 2  # refused before any rank starts
    assert "--multi-vector scores in one process" in capsys.readouterr().err


def test_multi_vector_eval_refuses_quantised_precisions(pages, tmp_path):
    from uniembed.errors import ConfigError

    with pytest.raises(ConfigError, match="drop --precision"):
        evaluate(FakeLateInteraction(), "synthetic", tmp_path, None, tasks=tasks(pages), progress=False,
                 multi_vector_pool=1, precisions=["int8"])


class StopsAfterOneChunk(FakeLateInteraction):
    """Encodes its first `encode_multi` call, then fails as a killed run would."""

    def encode_multi(self, items, batch_size=32, show_progress_bar=None):
        if self.calls:
            raise KeyboardInterrupt("stopped mid-run")
        return super().encode_multi(items, batch_size, show_progress_bar)


def test_token_matrices_are_cached_and_an_interrupted_run_keeps_its_chunks(pages, tmp_path):
    from uniembed.encoding.cache import EmbeddingCache

    plain = run_tasks_multi(FakeLateInteraction(), tasks(pages), progress=False)
    cache = EmbeddingCache(tmp_path / "cache", "fake-late-interaction")
    with pytest.raises(KeyboardInterrupt):  # batch 1 x 4 batches a chunk: the first 4 of 8 items are stored
        run_tasks_multi(StopsAfterOneChunk(), tasks(pages), batch_size=1, progress=False, cache=cache)
    keys = list(dict.fromkeys(item.content_key() for task in tasks(pages)
                              for item in [*task.queries, *task.candidates]))
    assert len(cache.get_tokens(keys)) == 4
    resumed_encoder = FakeLateInteraction()
    resumed = run_tasks_multi(resumed_encoder, tasks(pages), batch_size=1, progress=False, cache=cache)
    assert (resumed.stats.from_cache, resumed.stats.encoded, len(resumed_encoder.encoded)) == (4, 4, 4)
    warm_encoder = FakeLateInteraction()
    warm = run_tasks_multi(warm_encoder, tasks(pages), batch_size=1, progress=False, cache=cache)
    assert warm_encoder.calls == 0 and (warm.stats.from_cache, warm.stats.encoded) == (8, 0)
    for run in (resumed, warm):
        assert [(t.name, t.metrics, t.examples) for t in run.tasks] == [
            (t.name, t.metrics, t.examples) for t in plain.tasks]
    stored = cache.get_tokens(keys)  # what was stored is what the encoder returned, shape and values
    direct = dict(zip(keys, FakeLateInteraction().encode_multi([*tasks(pages)[0].queries, *pages])))
    assert all(stored[key].shape == direct[key].shape and np.array_equal(stored[key], direct[key]) for key in keys)
    with pytest.raises(ValueError, match="want \\(tokens, dim\\)"):
        cache.put_tokens(["flat"], [np.zeros(4, np.float32)])
    cache.close()
