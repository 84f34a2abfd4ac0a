"""`Item` is frozen and computes its content key once; a path is resolved once per file version, not per
reference (issue 26: 150,000 MMEB-V1 candidate references to 1,500 images resolved 150,000 paths)."""
from __future__ import annotations

import dataclasses
import os

import pytest
from PIL import Image

from uniembed import inputs
from uniembed.data.readers.pool import CandidatePool
from uniembed.inputs import Item


@pytest.fixture
def counted(monkeypatch):
    """Counts the calls that resolve a path into its fingerprint (the expensive part of a content key)."""
    calls = []
    original = inputs._path_fingerprint

    def counting(path, stat):
        calls.append(path)
        return original(path, stat)

    monkeypatch.setattr(inputs, "_path_fingerprint", counting)
    monkeypatch.setattr(inputs, "_path_fingerprints", {})
    return calls


def write_png(path, colour):
    Image.new("RGB", (4, 4), colour).save(path)
    return str(path)


def test_item_is_frozen_and_its_key_is_computed_once(tmp_path, monkeypatch):
    item = Item(text="x", image=write_png(tmp_path / "a.png", (1, 2, 3)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.text = "y"
    computed = []
    original = Item._compute_content_key
    monkeypatch.setattr(Item, "_compute_content_key", lambda self: computed.append(self) or original(self))
    key = item.content_key()
    assert item.content_key() == key and len(computed) == 1
    assert item == Item(text="x", image=item.image) and "_content_key" not in repr(item)
    assert dataclasses.replace(item, text="y").content_key() != key


def test_a_file_is_fingerprinted_once_however_many_items_refer_to_it(tmp_path, counted):
    path = write_png(tmp_path / "shared.png", (9, 9, 9))
    keys = {Item(image=path, text=f"caption {i}").content_key() for i in range(50)}
    assert len(keys) == 50 and len(counted) == 1


def test_an_edited_file_gets_a_new_key_in_a_new_item(tmp_path, counted):
    path = write_png(tmp_path / "edited.png", (1, 1, 1))
    before = Item(image=path).content_key()
    write_png(tmp_path / "edited.png", (200, 1, 1))
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    assert Item(image=path).content_key() != before and len(counted) == 2


def test_pool_keys_each_distinct_reference_once(tmp_path, monkeypatch):
    paths = [write_png(tmp_path / f"{i}.png", (i, i, i)) for i in range(3)]
    computed = []
    original = Item._compute_content_key
    monkeypatch.setattr(Item, "_compute_content_key", lambda self: computed.append(self) or original(self))
    pool = CandidatePool()
    indices = [pool.add(Item(image=paths[i % 3])) for i in range(30)]
    assert indices == [i % 3 for i in range(30)] and len(pool) == 3 and len(computed) == 3
    alias = os.path.join(str(tmp_path), ".", "1.png")  # another string for the same file: one pool entry still
    assert pool.add(Item(image=alias)) == 1 and len(pool) == 3


def test_pool_looks_a_reused_item_object_up_without_reading_its_fields(tmp_path, monkeypatch):
    from uniembed.data.readers import pool as pool_module

    items = [Item(image=write_png(tmp_path / f"{i}.png", (i, i, i)), text=f"c{i}") for i in range(3)]
    read = []
    original = pool_module._path_fields
    monkeypatch.setattr(pool_module, "_path_fields", lambda item: read.append(item) or original(item))
    pool = CandidatePool()
    indices = [pool.add(items[i % 3]) for i in range(30)]
    assert indices == [i % 3 for i in range(30)] and len(pool) == 3 and len(read) == 3
    twin = Item(image=items[1].image, text="c1")  # an equal item, another object: found by its fields
    assert pool.add(twin) == 1 and len(read) == 4 and len(pool) == 3
