"""Checks every backbone family must pass, shared by the per-family test files.

`hf_hidden` of each family runs the wrapped transformers model's OWN forward (its positions, its mask) on one
item's tokens alone; uniembed's hidden states for the same item inside a padded mixed batch must equal it.
"""
from __future__ import annotations

import numpy as np
import torch

from uniembed import Embedder, Item


def parity_items(media_dir) -> dict[str, Item]:
    return {
        "text": Item(text="a red circle left of a blue square"),
        "image": Item(text="what colour is the shape?", image=str(media_dir / "red.png"), instruction="Answer"),
        "two_images": Item(text="which differs?", images=[str(media_dir / "red.png"), str(media_dir / "blue.jpg")]),
        "video_frames": Item(text="a green ball moving right", video=str(media_dir / "clip")),
        "video_file": Item(video=str(media_dir / "clip.mp4")),
        "short": Item(text="hi"),
    }


def variant(embedder: Embedder, **overrides) -> Embedder:
    return Embedder(embedder.backbone, embedder.config.replace(**overrides))


def mismatches(model: Embedder, media_dir, hf_hidden, names=None) -> dict[str, float]:
    """Largest |uniembed - transformers| per item over its real tokens (items batched, padded on the model's side)."""
    items = parity_items(media_dir)
    names = names or list(items)
    decoded = [model.decode(items[name], i) for i, name in enumerate(names)]
    batch = model.collate(decoded)
    with torch.no_grad():
        ours = model.backbone.hidden_states(batch, model.config)
    out = {}
    for row, one in enumerate(decoded):
        reference = hf_hidden(model, model.collate([one]))
        real = batch["attention_mask"][row].bool()
        assert int(real.sum()) == reference.shape[0]
        out[names[row]] = float((ours[row, real] - reference).abs().max())
    return out


def assert_batch_invariant(model: Embedder, items: list) -> None:
    alone = np.stack([model.encode([item])[0] for item in items])
    together = model.encode(items, batch_size=len(items))
    order = np.random.default_rng(0).permutation(len(items))
    shuffled = model.encode([items[i] for i in order], batch_size=3)
    np.testing.assert_allclose(together, alone, atol=1e-4)
    np.testing.assert_allclose(shuffled, alone[order], atol=1e-4)
    assert np.abs(together[0] - together[-1]).max() > 1e-3


def assert_save_load_and_lora(model: Embedder, items: list, tmp_path) -> None:
    from peft import LoraConfig, get_peft_model

    model = variant(model, pooling="mean", prompts={"query": "Find the match"})
    before = model.encode(items)
    model.save_pretrained(tmp_path / "m")
    loaded = Embedder.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config and type(loaded.backbone) is type(model.backbone)
    np.testing.assert_array_equal(loaded.encode(items), before)

    loaded.backbone.model = get_peft_model(loaded.backbone.model, LoraConfig(
        r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    tuned = Embedder(loaded.backbone, loaded.config, source=str(tmp_path / "m"))
    expected = tuned.encode(items)
    tuned.save_pretrained(tmp_path / "adapter", merge_lora=False)
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    np.testing.assert_allclose(Embedder.from_pretrained(tmp_path / "adapter").encode(items), expected, atol=1e-5)
    assert np.abs(expected - before).max() > 1e-4


def assert_reranker_and_soup(family: str, tmp_path) -> None:
    """The re-ranker scores (query, candidate) prompts on this backbone, and two checkpoints soup."""
    from PIL import Image

    from uniembed.models.reranker import Reranker
    from uniembed.soup import uniform_soup

    scores = Reranker.from_embedder(Embedder.tiny(family=family)).score(
        "a red square", ["a blue circle", {"image": Image.new("RGB", (64, 64), "red"), "text": "red"}])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    first, second = Embedder.tiny(family=family, seed=0), Embedder.tiny(family=family, seed=1)
    first.save_pretrained(tmp_path / "a")
    second.save_pretrained(tmp_path / "b")
    soup = uniform_soup([tmp_path / "a", tmp_path / "b"]).embedder
    name, weight = next(iter(soup.backbone.model.state_dict().items()))
    expected = (first.backbone.model.state_dict()[name] + second.backbone.model.state_dict()[name]) / 2
    torch.testing.assert_close(weight, expected)


def assert_serves(model: Embedder) -> None:
    """/v1/embeddings returns the model's own embeddings for text and an image (data URI)."""
    from fastapi.testclient import TestClient

    from uniembed.serving.app import create_app
    from uniembed.serving.config import ServerConfig

    from serving_helpers import data_uri, png_bytes

    image = data_uri(png_bytes())
    with TestClient(create_app(model, ServerConfig(served_model_name="m"))) as client:
        reply = client.post("/v1/embeddings", json={"input": ["a red circle", {"image": image}]})
    assert reply.status_code == 200, reply.text
    served = np.array([row["embedding"] for row in reply.json()["data"]], dtype=np.float32)
    np.testing.assert_allclose(served, model.encode(["a red circle", {"image": image}]), atol=1e-5)
