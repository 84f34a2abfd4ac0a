"""`training/optim.py`: AdamW's groups and its fused kernel (the same update as torch's default loop)."""
from __future__ import annotations

import torch
from torch import nn

from uniembed.training.optim import build_optimizer, fusable


def test_fused_adamw_gives_the_looped_update_and_keeps_the_decay_groups():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4))
    reference = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4))
    reference.load_state_dict(model.state_dict())
    temperature = nn.Parameter(torch.tensor(0.05))
    optimizer = build_optimizer(model, [temperature], lr=1e-2, weight_decay=0.1)
    assert optimizer.defaults["fused"] is True
    decay, no_decay = optimizer.param_groups
    assert [p.ndim for p in decay["params"]] == [2, 2] and decay["weight_decay"] == 0.1
    assert any(p is temperature for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    looped = torch.optim.AdamW([{"params": [p for p in reference.parameters() if p.ndim >= 2], "weight_decay": 0.1},
                                {"params": [p for p in reference.parameters() if p.ndim < 2], "weight_decay": 0.0}],
                               lr=1e-2, foreach=False)
    inputs = torch.randn(32, 8)
    for _ in range(5):
        for net, opt in ((model, optimizer), (reference, looped)):
            opt.zero_grad()
            net(inputs).square().mean().backward()
            opt.step()
    for got, expected in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_parameters_the_kernel_cannot_take_fall_back_to_the_loop():
    assert not fusable([nn.Parameter(torch.zeros(3, dtype=torch.int64), requires_grad=False)])
    assert not fusable([])
    assert build_optimizer(None, [nn.Parameter(torch.zeros(2))], lr=1e-3, weight_decay=0.0).defaults["fused"] is True
