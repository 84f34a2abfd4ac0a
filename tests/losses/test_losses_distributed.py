"""Cross-device negatives with real processes: torchrun, 2 ranks, gloo, CPU, float64.

The worker (tests/dist/losses_worker.py) checks on every rank that the DDP-averaged gradients of the local loss
equal one process computing the whole batch, for each option of the contrastive loss, for GradCache and for the
late-interaction (multi-vector) loss with token tensors of different lengths per rank.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ports import free_port

from uniembed.losses import NegativeFilters, contrastive_loss, gather_no_grad, gather_with_grad, local_contrastive_loss
from uniembed.losses.late_interaction import late_interaction_loss, local_late_interaction_loss

WORKER = Path(__file__).resolve().parents[1] / "dist" / "losses_worker.py"
EXPECTED_OK = [
    "plain_infonce",
    "modality_mask",
    "false_negative_filter",
    "top_k",
    "hardness_weights",
    "appended_hard_negatives",
    "symmetric",
    "learnable_temperature",
    "per_task_temperature",
    "uneven_local_batches",
    "everything",
    "gradcache_ddp",
    "gradcache_ddp_matryoshka",
    "late_interaction_cross_rank",
]
EXPECTED_MISMATCH = ["control:no_gradient", "control:local_slice_only", "control:late_interaction_local_only"]


@pytest.mark.distributed
def test_local_loss_and_gradcache_match_one_process_on_two_ranks(tmp_path):
    """One torchrun launch checks every scenario (a single test, so pytest-xdist never launches it twice)."""
    out = tmp_path / "results.json"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), str(WORKER), str(out),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, f"torchrun failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    results = json.loads(out.read_text())["results"]
    assert sorted(results) == sorted(EXPECTED_OK + EXPECTED_MISMATCH)
    wrong = {name: results[name] for name in EXPECTED_OK if results[name] != "ok"}
    wrong.update({name: results[name] for name in EXPECTED_MISMATCH if not results[name].startswith("mismatch")})
    assert not wrong, f"scenarios that failed on 2 ranks: {wrong}"


def test_without_process_group_everything_is_single_process():
    query, candidates = torch.randn(4, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    assert gather_with_grad(candidates) is candidates
    assert gather_no_grad(torch.arange(3)).tolist() == [0, 1, 2]
    torch.testing.assert_close(
        local_contrastive_loss(query, candidates, temperature=0.1, filters=NegativeFilters(top_k=2, symmetric=True)),
        contrastive_loss(query, candidates, temperature=0.1, filters=NegativeFilters(top_k=2, symmetric=True)),
    )
    tokens = torch.nn.functional.normalize(torch.randn(6, 3, 5, dtype=torch.float64), dim=-1)
    torch.testing.assert_close(local_late_interaction_loss(tokens[:4], tokens, temperature=0.1),
                               late_interaction_loss(tokens[:4], tokens, temperature=0.1))
