"""One decode stage: an eval run with a real `Embedder` decodes each image once, in one pool of threads.

The spy wraps the real `load_image` (every image decode goes through it) and records what it was given;
nothing about the model is mocked. Eval used to pre-decode images in its own threads, and then
`Embedder.iter_batches` ran a second pool over the already decoded images.
"""
from collections import Counter

import pytest
from eval_fakes import colour_image

import uniembed.inputs
from uniembed.data.examples import EvalTask
from uniembed.encoding import encode_distinct
from uniembed.eval.runner import run_tasks
from uniembed.inputs import Item
from uniembed.models.embedder import Embedder


@pytest.fixture()
def decodes(monkeypatch):
    calls: Counter = Counter()
    real = uniembed.inputs.load_image

    def spy(source, *args, **kwargs):
        calls[source if isinstance(source, str) else f"<decoded {type(source).__name__}>"] += 1
        return real(source, *args, **kwargs)

    monkeypatch.setattr(uniembed.inputs, "load_image", spy)
    return calls


def test_an_eval_run_decodes_every_image_once(tmp_path, decodes):
    colours = ("red", "green", "blue", "yellow", "black", "white")
    images = [str(colour_image(tmp_path / f"{c}.png", c, size=40 + 8 * i)) for i, c in enumerate(colours)]
    queries = [Item(text=c, instruction="find") for c in colours]
    task = EvalTask("once", queries, [Item(image=path) for path in images], [{i: 1.0} for i in range(len(colours))])
    run = run_tasks(Embedder.tiny(), [task, EvalTask("again", queries[:2], [Item(image=p) for p in images[:3]],
                                                      [{0: 1.0}, {1: 1.0}])], batch_size=2, progress=False)
    assert run.stats.encoded == 12
    assert decodes == Counter({path: 1 for path in images})  # once each, and never a decoded image again


def test_encode_distinct_decodes_once_without_decode_workers(tmp_path, decodes):
    path = str(colour_image(tmp_path / "red.png", "red"))
    encode_distinct(Embedder.tiny(), [Item(image=path), Item(image=path, text="x")], decode_workers=0,
                    progress=False)
    assert decodes == Counter({path: 2})  # two distinct items, one decode each
