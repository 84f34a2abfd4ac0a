"""Temperature: fixed, learnable scalar, per task; log-scale storage, clamping, weight-decay exclusion."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from uniembed.errors import ConfigError, InputError
from uniembed.losses import Temperature, contrastive_loss, temperature_parameters


def test_fixed_temperature_has_no_parameters():
    temperature = Temperature(0.02)
    assert float(temperature()) == pytest.approx(0.02)
    assert list(temperature.parameters()) == []
    assert "log_scale" in temperature.state_dict()  # saved with the model all the same


def test_learnable_scalar_is_stored_as_log_inverse_and_learns():
    temperature = Temperature(0.05, learnable=True)
    assert float(temperature.log_scale.detach()) == pytest.approx(math.log(20.0))
    query, candidates = torch.randn(4, 8), torch.randn(4, 8)
    contrastive_loss(query, candidates, temperature=temperature()).backward()
    # d/d(log s) of tau = exp(-log s) is -tau, so the chain rule gives dL/dlog_s = -tau * dL/dtau.
    tau = torch.tensor(0.05, requires_grad=True)
    contrastive_loss(query, candidates, temperature=tau).backward()
    assert float(temperature.log_scale.grad) == pytest.approx(-0.05 * float(tau.grad), rel=1e-4)


def test_per_task_lookup_and_gradients_only_reach_used_tasks():
    temperature = Temperature(0.05, tasks=["nli", "vqa", "video"])
    with torch.no_grad():
        temperature.log_scale.copy_(torch.log(1 / torch.tensor([0.1, 0.02, 0.5])))
    taus = temperature(["vqa", "nli", "vqa"])
    torch.testing.assert_close(taus, torch.tensor([0.02, 0.1, 0.02]))
    contrastive_loss(torch.randn(3, 4), torch.randn(3, 4), temperature=taus).backward()
    grad = temperature.log_scale.grad
    assert grad[0] != 0 and grad[1] != 0 and grad[2] == 0
    assert temperature.values() == pytest.approx({"temperature/nli": 0.1, "temperature/vqa": 0.02,
                                                  "temperature/video": 0.5})


def test_clamp_keeps_the_range():
    temperature = Temperature(0.05, tasks=["a", "b"], min_tau=0.01, max_tau=0.5)
    with torch.no_grad():
        temperature.log_scale.copy_(torch.tensor([10.0, -10.0]))  # tau 4.5e-5 and 22026
    temperature.clamp_()
    torch.testing.assert_close(temperature(["a", "b"]), torch.tensor([0.01, 0.5]))


def test_parameters_are_found_for_weight_decay_exclusion():
    model = nn.Module()
    model.encoder = nn.Linear(3, 3)
    model.temperature = Temperature(0.05, learnable=True)
    model.fixed = Temperature(0.02)
    found = list(temperature_parameters(model))
    assert len(found) == 1 and found[0] is model.temperature.log_scale


def test_state_dict_round_trip():
    source = Temperature(0.05, tasks=["a", "b"])
    with torch.no_grad():
        source.log_scale.add_(torch.tensor([0.5, -0.3]))
    target = Temperature(0.05, tasks=["a", "b"])
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target(["b", "a"]), source(["b", "a"]))


def test_errors():
    with pytest.raises(ConfigError, match="query 1: unknown task 'ocr'"):
        Temperature(0.05, tasks=["a"])(["a", "ocr"])
    with pytest.raises(ValueError, match="task name of every query") as caught:
        Temperature(0.05, tasks=["a"])()
    assert not isinstance(caught.value, InputError)
    with pytest.raises(ConfigError, match="outside"):
        Temperature(2.0)
    with pytest.raises(ConfigError, match="distinct"):
        Temperature(0.05, tasks=["a", "a"])
