"""Pixels never depend on whether torchvision is installed (issue 23, point 6).

transformers 5 picks the torchvision backend of an image processor whenever torchvision imports, and its
pixels differ from the PIL/numpy processor the published checkpoints were made with. uniembed resizes and
normalises with PIL and numpy itself (Qwen2-VL, Qwen2.5-VL, Qwen3-VL images, frames and pre-resize) and builds
the explicit `...ImageProcessorPil` classes (LLaVA-OneVision's AnyRes). The default venv has no torchvision, so the
guard is: the processor classes are the PIL ones, whatever loads them, and every pixel path runs with a poisoned
`torchvision` module in place (any import or availability check of it fails). `make test-interop` runs the same
tests in a venv where a real torchvision imports.
"""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from PIL import Image

from uniembed import Embedder, Item
from uniembed.frames import FramePolicy
from uniembed.models.tiny import TINY_FAMILIES

PHOTO = Image.new("RGB", (150, 100), (200, 40, 90))
FRAMES = [Image.new("RGB", (64, 48), (30 * i, 90, 200)) for i in range(4)]
ITEMS = [Item(image=PHOTO, text="a red square"), Item(images=[PHOTO, PHOTO.resize((300, 200))]),
         Item(video=FRAMES, text="a clip")]


class _Poisoned(types.ModuleType):
    """A `torchvision` whose every use fails: an import of it or of a submodule, or an attribute read."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the pixel path used torchvision ({self.__name__}.{name})")


def pretend_torchvision_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers' availability checks answer yes (as on a GPU machine); the module itself is poisoned."""
    poison = _Poisoned("torchvision")
    poison.__spec__ = None
    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.v2", "torchvision.io"):
        monkeypatch.setitem(sys.modules, name, poison)
    for name, module in list(sys.modules.items()):
        if name.startswith("transformers") and module is not None:
            for check in ("is_torchvision_available", "is_torchvision_v2_available"):
                # vars(), not hasattr(): hasattr on transformers' lazy modules imports their submodules, and with a
                # real torchvision installed (make test-interop) some of those import the poisoned module
                if check in vars(module):
                    monkeypatch.setattr(module, check, lambda: True)


def pixels(model: Embedder) -> list[np.ndarray]:
    batch = model.collate([model.decode(item) for item in ITEMS])
    return [batch[key].float().numpy() for key in sorted(batch) if key.startswith("pixel_values")]


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_image_processor_is_the_pil_backend(family, tmp_path, monkeypatch):
    model = Embedder.tiny(family=family)
    assert type(model.backbone.image_processor).__name__.endswith("ImageProcessorPil")
    model.save_pretrained(tmp_path)
    pretend_torchvision_is_installed(monkeypatch)
    loaded = Embedder.from_pretrained(str(tmp_path))  # the door users take: still the PIL class
    assert type(loaded.backbone.image_processor).__name__.endswith("ImageProcessorPil")


@pytest.mark.parametrize(("family", "profile"), [("qwen2_vl", "gme"), ("qwen2_vl", "rzenembed"), ("qwen2_vl", "unite"),
                                                 ("qwen3_vl", "qwen3-vl-embedding"), ("llava_onevision", None)])
def test_every_pixel_path_runs_with_torchvision_poisoned(family, profile, monkeypatch):
    model = Embedder.tiny(family=family, profile=profile)
    model = model.with_options(frames=FramePolicy(num_frames=4))
    expected = pixels(model)
    pretend_torchvision_is_installed(monkeypatch)
    fresh = Embedder.tiny(family=family, profile=profile).with_options(frames=FramePolicy(num_frames=4))
    got = pixels(fresh)
    assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))
