"""Fixtures of the training tests."""
from __future__ import annotations

import pytest
from training_data import write_training_set


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    write_training_set(root)
    return root


@pytest.fixture(scope="module")
def synth_tiny(tmp_path_factory):
    from uniembed.data.synth.generate import generate

    root = tmp_path_factory.mktemp("synth")
    generate(root, size="tiny", seed=0)
    return root
