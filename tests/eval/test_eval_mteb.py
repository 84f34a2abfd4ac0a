"""The mteb adapter with batches shaped as mteb sends them (dicts of columns, PIL images)."""
from enum import Enum
from types import SimpleNamespace

import numpy as np
import pytest
from eval_fakes import COLOURS, FakeEncoder
from PIL import Image

from uniembed.eval.mteb_adapter import MtebEncoder, batch_items
from uniembed.inputs import Item


class PromptType(str, Enum):  # the shape of mteb's enum
    query = "query"
    document = "document"


class PromptedFake(FakeEncoder):
    def __init__(self, prompts):
        super().__init__()
        self.config = SimpleNamespace(prompts=prompts)
        self.prompt_names = []
        self.dimension = 64

    def encode(self, items, batch_size=32, prompt_name=None):
        self.prompt_names.append(prompt_name)
        if prompt_name:
            items = [item.with_instruction(self.config.prompts[prompt_name]) for item in items]
        return super().encode(items, batch_size)


def red():
    return Image.new("RGB", (8, 8), COLOURS["red"])


def test_rows_with_text_and_image_are_one_fused_input():
    items = batch_items({"text": ["a", "", "b"], "image": [red(), red(), None]})
    assert [item.modality_name for item in items] == ["text+image", "image", "text"]
    with pytest.raises(ValueError, match="different lengths"):
        batch_items({"text": ["a"], "image": [red(), red()]})
    with pytest.raises(ValueError, match="none of the columns"):
        batch_items({"label": [1]})


def test_encode_concatenates_batches_and_selects_prompts():
    fake = PromptedFake({"query": "q:", "document": "", "MyTask-query": "task q:"})
    adapter = MtebEncoder(fake)
    loader = [{"text": ["red", "blue"]}, {"text": ["green"], "image": [red()]}]
    out = adapter.encode(loader, task_metadata=SimpleNamespace(name="MyTask"), hf_split="test", hf_subset="default",
                         prompt_type=PromptType.query)
    assert out.shape == (3, 64) and out.dtype == np.float32
    assert fake.prompt_names == ["MyTask-query"]
    adapter.encode(loader, task_metadata=SimpleNamespace(name="Other"), hf_split="test", hf_subset="default",
                   prompt_type="document")
    assert fake.prompt_names[-1] == "document"
    adapter.encode(loader, task_metadata=None, hf_split="test", hf_subset="default", prompt_type=None)
    assert fake.prompt_names[-1] is None
    expected = FakeEncoder().encode([Item(text="green", image=red(), instruction="task q:")])
    np.testing.assert_allclose(out[2], expected[0])


def test_similarity_is_cosine():
    adapter = MtebEncoder(FakeEncoder())
    a = np.array([[3.0, 4.0], [1.0, 0.0]])
    sim = adapter.similarity(a, np.array([[1.0, 0.0]]))
    np.testing.assert_allclose(sim[:, 0], [0.6, 1.0])
    np.testing.assert_allclose(adapter.similarity_pairwise(a, a), [1.0, 1.0])


def test_adapter_over_the_real_embedder_matches_encode(tiny_embedder):
    adapter = MtebEncoder(tiny_embedder, batch_size=4)
    image = red()
    out = adapter.encode([{"text": ["a red square", "a cat"], "image": [image, None]}], task_metadata=None,
                         hf_split="test", hf_subset="default", prompt_type="query")
    direct = tiny_embedder.encode([Item(text="a red square", image=image), Item(text="a cat")])
    np.testing.assert_allclose(out, direct, atol=1e-5)
