"""Padding share of image batches formed by a token estimate: the old one (every image at the pixel budget's
maximum, 28x28 px per token: all images tie, so batches keep input order) against `Backbone.estimate_tokens`
(each image at its real resized size). Token counts, not times: the result is the same on any machine.

256 blank images of random sizes 200-1600 px per side, batches of 16, tiny models of each family (Qwen budgets
4-1280 tokens per image, LLaVA-OneVision its AnyRes tiling); the true lengths come from the real token form.

    .venv/bin/python benchmarks/estimate_padding.py
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from uniembed.inputs import Item
from uniembed.models.embedder import Embedder
from uniembed.models.tiny import TINY_FAMILIES

BATCH = 16
TOKEN_PX = {"qwen2_vl": 28, "qwen3_vl": 32}


def padding(lengths: list[int], order: list[int]) -> tuple[float, int]:
    """(share of padding, padded batch tokens) of batches cut from `order`."""
    batches = [order[start:start + BATCH] for start in range(0, len(order), BATCH)]
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    return 1 - sum(lengths) / padded, padded


def main() -> None:
    rng = np.random.default_rng(0)
    items = [Item(image=Image.new("RGB", tuple(int(v) for v in rng.integers(200, 1600, 2)))) for _ in range(256)]
    print("| family | estimate | padding | padded batch tokens |\n|---|---|---|---|")
    for family in TINY_FAMILIES:
        model = Embedder.tiny(family=family)
        if family in TOKEN_PX:
            unit = TOKEN_PX[family]
            model = model.with_options(min_pixels=4 * unit * unit, max_pixels=1280 * unit * unit, max_length=2048)
        lengths = [len(model.backbone.item_tokens(model.decode(item), model.config)[0]) for item in items]
        estimates = {"old (max budget, 28x28 px)": lambda item: model.config.max_pixels // (28 * 28),
                     "Backbone.estimate_tokens": model.estimate_tokens}
        for label, estimate in estimates.items():
            share, padded = padding(lengths, sorted(range(len(items)), key=lambda i: -estimate(items[i])))
            print(f"| {family} | {label} | {100 * share:.1f}% | {padded} |")


if __name__ == "__main__":
    main()
