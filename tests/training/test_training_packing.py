"""Training with sequence packing: a GradCache step, plain and under DDP (one gloo rank in-process; two torchrun
ranks with cross-rank negatives through tests/dist/packing_worker.py), gives the padded step's gradients (float64
tiny Qwen2-VL, items of very different lengths so that they share rows)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from ports import free_port
from torch.nn.parallel import DistributedDataParallel

from uniembed import Embedder, Item
from uniembed.losses.contrastive import contrastive_loss
from uniembed.losses.gradcache import GradCache
from uniembed.models.backbones import packing

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = "red green blue circle square left right of a the small large shape".split()


def step_items(media_dir) -> tuple[list[Item], list[Item]]:
    lengths = [80, 3, 5, 60, 2, 4]  # ~44 template tokens + 1 per word
    queries = [Item(text=" ".join(WORDS[(i + k) % len(WORDS)] for k in range(n))) for i, n in enumerate(lengths)]
    candidates = [Item(text="a red circle", image=str(media_dir / "red.png")), Item(text="blue"),
                  Item(video=str(media_dir / "clip")), Item(text=" ".join(WORDS * 3)),
                  Item(image=str(media_dir / "blue.jpg")), Item(text="green square")]
    return queries, candidates


def gradients(model: Embedder, media_dir, packing_mode: str, ddp: bool) -> dict[str, torch.Tensor]:
    module = Embedder(model.backbone, model.config.replace(packing=packing_mode)).module
    module.zero_grad(set_to_none=True)
    network = DistributedDataParallel(module) if ddp else module

    def encode(items: list[Item]) -> torch.Tensor:
        return network(model.collate([model.decode(item, i) for i, item in enumerate(items)]))

    queries, candidates = step_items(media_dir)
    cache = GradCache([encode, encode], lambda q, c: contrastive_loss(q, c, temperature=0.05), chunk_size=3,
                      sync_modules=[network] if ddp else ())
    cache.step(queries, candidates)
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def model64():
    model = Embedder.tiny(family="qwen2_vl", attention="bidirectional", pooling="mean")
    model.backbone.model.double()
    return model


def test_packing_packs_these_chunks(model64, media_dir):
    queries, _ = step_items(media_dir)
    batch = model64.collate([model64.decode(item, i) for i, item in enumerate(queries[:3])])
    plan = packing.plan_packing(batch["attention_mask"], model64.config.replace(packing="auto"),
                                model64.backbone.hf_model.config)
    assert plan is not None and plan.rows < 3  # `auto` packs a training chunk of uneven lengths


@pytest.mark.parametrize("ddp", [False, True])
def test_grad_cache_gradients_with_packing_equal_padded(model64, media_dir, tmp_path, ddp):
    if ddp:
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        padded = gradients(model64, media_dir, "off", ddp)
        packed = gradients(model64, media_dir, "on", ddp)
    finally:
        if ddp:
            dist.destroy_process_group()
    assert padded.keys() == packed.keys() and len(padded) > 10
    for name, grad in padded.items():
        torch.testing.assert_close(packed[name], grad, atol=1e-10, rtol=1e-8, msg=name)


@pytest.mark.distributed
def test_two_rank_ddp_with_items_sharing_rows_gives_the_padded_gradients(tmp_path):
    """torchrun, 2 gloo ranks, float64 tiny Qwen2-VL: a GradCache step with cross-rank negatives and DDP's
    gradient averaging, packed (`packing: on`) and padded, bidirectional + mean and causal + last-token. The
    worker records every packing plan: each rank must really put several items in one row (a chunk of 3 items
    in fewer rows), or the comparison would prove nothing about the block mask or the per-item positions."""
    worker = Path(__file__).resolve().parents[1] / "dist" / "packing_worker.py"
    out = tmp_path / "results.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), str(worker), str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false"))
    assert run.returncode == 0, f"torchrun failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    ranks = json.loads(out.read_text())["ranks"]
    assert len(ranks) == 2
    for rank, results in enumerate(ranks):
        assert sorted(results) == ["bidirectional/mean", "causal/last"]
        for mode, result in results.items():
            where = f"rank {rank}, {mode}: {result}"
            assert result["padded_plans"] == 0, where  # `off` never packs
            # every chunk of 3 items packs into 2 rows: 2 query + 2 candidate chunks, each embedded twice by
            # GradCache (without, then with gradient)
            assert result["packed_chunks"] == 8 and result["items_in_shared_rows"] == 8, where
            assert result["grads"][0] > 10 and result["grads"][2], where
            assert result["loss_diff"] < 1e-10, where
            assert result["max_grad_diff"] < 1e-10 and result["max_rel_diff"] < 1e-7, where
