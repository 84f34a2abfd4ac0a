"""Worker for tests/training/test_training_packing.py: `torchrun --nproc_per_node 2 packing_worker.py OUT.json`.

Each rank holds its own share of one global batch: queries and candidates (texts of very different lengths, one
image) on a float64 tiny Qwen2-VL (M-RoPE) wrapped in DistributedDataParallel. One GradCache step with
cross-rank negatives (`local_contrastive_loss` gathers the candidates with gradient) runs padded
(`packing: off`), then packed (`packing: on`); every packing plan the forward makes is recorded, so the worker
can tell that items really shared rows. Rank 0 writes, per attention mode, {"packed_chunks", "chunks",
"items_in_shared_rows", "plans", "padded_plans", "max_grad_diff", "max_rel_diff", "loss_diff", "grads"} for each rank.
"""
from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from PIL import Image
from torch.nn.parallel import DistributedDataParallel

from uniembed import Embedder, Item
from uniembed.losses import GradCache, local_contrastive_loss
from uniembed.models.backbones import packing
from worker_exit import write_results_and_exit

WORDS = "red green blue circle square left right of a the small large shape".split()
# Rank 0, rank 1 (rank 1 has one hard negative: uneven local batches). Next-fit packs in batch order into rows
# of the longest item's length (about 44 template tokens + 1 per word), so each chunk of 3 starts with a long item and
# its two short ones share a row.
# Candidate 1 becomes an image (a vision chunk beside short texts); rank 1's last chunk is a single item.
QUERY_LENGTHS = ([80, 3, 5, 72, 2, 4], [70, 2, 6, 72, 3, 4])
CANDIDATE_LENGTHS = ([76, 0, 3, 72, 2, 4], [72, 0, 4, 76, 2, 3, 1])
CHUNK = 3
PLANS: list[tuple[int, int]] = []  # (items, rows) of every plan the forward made


def text(length: int, shift: int) -> Item:
    return Item(text=" ".join(WORDS[(shift + k) % len(WORDS)] for k in range(length)))


def rank_items(rank: int) -> tuple[list[Item], list[Item]]:
    queries = [text(n, 3 * rank + i) for i, n in enumerate(QUERY_LENGTHS[rank])]
    candidates = [text(n, 5 * rank + i + 1) for i, n in enumerate(CANDIDATE_LENGTHS[rank])]
    image = Image.new("RGB", (56, 56), "white")
    image.paste((200, 40 + 100 * rank, 30), (12, 12, 44, 44))
    candidates[1] = Item(text="a shape", image=image)  # a vision chunk beside short texts
    return queries, candidates


def recording(plan_packing):
    def plan(attention_mask, config, hf_config):
        result = plan_packing(attention_mask, config, hf_config)
        if result is not None:
            PLANS.append((int(attention_mask.shape[0]), int(result.rows)))
        return result
    return plan


def step(model: Embedder, mode: str, rank: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One GradCache step on this rank's share under DDP; the DDP-averaged gradients and the global loss."""
    module = Embedder(model.backbone, model.config.replace(packing=mode)).module
    module.zero_grad(set_to_none=True)
    network = DistributedDataParallel(module)

    def encode(items: list[Item]) -> torch.Tensor:
        return network(model.collate([model.decode(item, i) for i, item in enumerate(items)]))

    queries, candidates = rank_items(rank)
    cache = GradCache([encode, encode], lambda q, c: local_contrastive_loss(q, c, temperature=0.05),
                      chunk_size=CHUNK, sync_modules=[network])
    loss = cache.step(queries, candidates).detach()
    dist.all_reduce(loss)
    grads = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
    return grads, loss / dist.get_world_size()


def run(attention: str, pooling: str, rank: int) -> dict:
    model = Embedder.tiny(family="qwen2_vl", attention=attention, pooling=pooling)
    model.backbone.model.double()
    PLANS.clear()
    padded, padded_loss = step(model, "off", rank)
    padded_plans = len(PLANS)
    PLANS.clear()
    packed, packed_loss = step(model, "on", rank)
    diffs = {name: float((packed[name] - grad).abs().max()) for name, grad in padded.items() if name in packed}
    relative = max(float((packed[name] - grad).abs().max() / grad.abs().max().clamp_min(1e-30))
                   for name, grad in padded.items() if name in packed)
    return {"packed_chunks": sum(rows < items for items, rows in PLANS), "chunks": len(PLANS),
            "items_in_shared_rows": sum(items - rows for items, rows in PLANS), "plans": list(PLANS),
            "padded_plans": padded_plans,
            "grads": [len(padded), len(packed), sorted(padded) == sorted(packed)],
            "max_grad_diff": max(diffs.values()), "max_rel_diff": relative,
            "loss_diff": float((packed_loss - padded_loss).abs())}


def main() -> int:
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    rank = dist.get_rank()
    packing.plan_packing = recording(packing.plan_packing)  # language_inputs looks it up in the module
    results = {f"{attention}/{pooling}": run(attention, pooling, rank)
               for attention, pooling in (("bidirectional", "mean"), ("causal", "last"))}
    write_results_and_exit(sys.argv[1], results, lambda everyone: {"ranks": everyone})


if __name__ == "__main__":
    sys.exit(main())
