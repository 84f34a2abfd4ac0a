"""Worker for tests/losses/test_losses_distributed.py, launched as `torchrun --nproc_per_node 2 losses_worker.py OUT.json`.

Every rank holds a slice of one global batch, computes the local loss over gathered candidates and backpropagates
through a DistributedDataParallel model; each rank also computes the whole batch in one plain process (a copy of
the model, `contrastive_loss`) and checks that its DDP-averaged gradients equal those; the same for the
late-interaction loss over per-token vectors (`local_late_interaction_loss`, token lengths differing by rank).
Three deliberately wrong set-ups (no gradient at all; local slice only, no gradient exchange; late interaction
scoring each rank's own documents only) must NOT match: they show the check bites.
Rank 0 writes {"results": {scenario: "ok" | "mismatch ..."}} to OUT.json.
"""
from __future__ import annotations

import copy
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from uniembed.losses import (
    GradCache,
    NegativeFilters,
    Temperature,
    all_reduce_gradients,
    contrastive_loss,
    contrastive_loss_per_query,
    local_contrastive_loss,
    split_batch,
)
from uniembed.losses.late_interaction import late_interaction_loss, local_late_interaction_loss
from uniembed.losses.matryoshka import matryoshka_loss
from worker_exit import write_results_and_exit

FEATURES, DIM = 10, 6
TASKS = ["nli", "vqa", "video"]


def global_batch(query_sizes, negative_sizes, seed=0):
    """The same global batch on every rank: per rank, its queries, then its positives + hard negatives."""
    g = torch.Generator().manual_seed(seed)
    ranks = []
    for size, negatives in zip(query_sizes, negative_sizes):
        x_query = torch.randn(size, FEATURES, generator=g)
        x_candidates = torch.cat([x_query + 0.7 * torch.randn(size, FEATURES, generator=g),
                                  torch.randn(negatives, FEATURES, generator=g)])
        ranks.append(dict(
            x_query=x_query,
            x_candidates=x_candidates,
            candidate_modality=torch.randint(1, 4, (size + negatives,), generator=g),
            tasks=[TASKS[int(i)] for i in torch.randint(0, 3, (size,), generator=g)],
        ))
    return ranks


def full_batch(ranks):
    """The same batch as one process sees it: candidates concatenated in rank order, positives shifted."""
    offsets, start = [], 0
    for part in ranks:
        offsets.append(start)
        start += part["x_candidates"].shape[0]
    return dict(
        x_query=torch.cat([p["x_query"] for p in ranks]),
        x_candidates=torch.cat([p["x_candidates"] for p in ranks]),
        positive=torch.cat([torch.arange(p["x_query"].shape[0]) + o for p, o in zip(ranks, offsets)]),
        candidate_modality=torch.cat([p["candidate_modality"] for p in ranks]),
        tasks=[t for p in ranks for t in p["tasks"]],
    )


def loss_options(options):
    return dict(filters=NegativeFilters(
        false_negative_margin=0.1 if "fn_filter" in options else None,
        top_k=3 if "top_k" in options else None,
        hardness_alpha=4.0 if "hardness" in options else None,
        symmetric="symmetric" in options,
    ))


def temperature_value(temperature, tasks):
    return temperature(tasks) if temperature.tasks is not None else temperature()


def naive_local_loss(query, candidates, *, temperature, kind, **options):
    """Deliberately wrong gathers, as in published releases, to show the comparison detects them."""
    rank, world = dist.get_rank(), dist.get_world_size()
    parts = [torch.empty_like(candidates) for _ in range(world)]
    dist.all_gather(parts, candidates.detach().contiguous())
    if kind == "local_slice_only":  # local slice differentiable, other ranks' gradients never come back
        parts[rank] = candidates
    gathered = torch.cat(parts)
    positive = torch.arange(query.shape[0]) + rank * candidates.shape[0]
    return contrastive_loss_per_query(query, gathered, positive, temperature=temperature, **options).mean()


def run_scenario(name, options, model, query_sizes=(4, 4), negative_sizes=(0, 0), temperature_kind="float"):
    rank = dist.get_rank()
    ranks = global_batch(query_sizes, negative_sizes, seed=len(name))
    mine, full = ranks[rank], full_batch(ranks)
    temperature = {"float": Temperature(0.05), "scalar": Temperature(0.05, learnable=True),
                   "per_task": Temperature(0.05, tasks=TASKS)}[temperature_kind].double()
    with torch.no_grad():  # start the learnable values at different points so each task's gradient differs
        shift = torch.linspace(0.0, 0.4, temperature.log_scale.numel())
        temperature.log_scale.add_(shift.view_as(temperature.log_scale))
    reference_model = copy.deepcopy(model.module)
    reference_temperature = copy.deepcopy(temperature)
    kwargs = loss_options(options)
    modality = "modality" in options

    # Distributed: one DDP forward over this rank's queries and candidates, local loss, backward.
    model.zero_grad(set_to_none=True)
    num_local = mine["x_query"].shape[0]
    embeddings = model(torch.cat([mine["x_query"], mine["x_candidates"]]).double())
    query, candidates = embeddings[:num_local], embeddings[num_local:]
    tau = temperature_value(temperature, mine["tasks"])
    if name.startswith("control:"):
        loss = naive_local_loss(query, candidates, temperature=tau, kind=name.split(":")[1], **kwargs)
    else:
        loss = local_contrastive_loss(query, candidates, temperature=tau,
                                      candidate_modality=mine["candidate_modality"] if modality else None, **kwargs)
    loss.backward()
    all_reduce_gradients(temperature.parameters())
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss /= dist.get_world_size()
    got = [p.grad for p in model.parameters()] + [p.grad for p in temperature.parameters()]

    # Reference: one process, the whole batch.
    reference_embeddings = reference_model(torch.cat([full["x_query"], full["x_candidates"]]).double())
    num_queries = full["x_query"].shape[0]
    reference_loss = contrastive_loss(
        reference_embeddings[:num_queries], reference_embeddings[num_queries:], full["positive"],
        temperature=temperature_value(reference_temperature, full["tasks"]),
        candidate_modality=full["candidate_modality"] if modality else None, **kwargs,
    )
    reference_loss.backward()
    want = [p.grad for p in reference_model.parameters()] + [p.grad for p in reference_temperature.parameters()]
    if options and not name.startswith("control:"):  # the option must act on this batch, or the check is empty
        detached = reference_embeddings.detach()
        plain = contrastive_loss(detached[:num_queries], detached[num_queries:], full["positive"],
                                 temperature=temperature_value(reference_temperature, full["tasks"]))
        if abs(float((plain - reference_loss).detach())) < 1e-6:
            return "inactive: the options did not change the loss on this batch"
    return compare(got, want, mean_loss, reference_loss.detach())


def compare(got, want, loss, reference_loss):
    worst = max(float((a - b).abs().max() / (b.abs().max() + 1e-12)) for a, b in zip(got, want))
    loss_error = abs(float(loss - reference_loss))
    if worst < 1e-9 and loss_error < 1e-9:
        return "ok"
    return f"mismatch: relative gradient error {worst:.3e}, loss error {loss_error:.3e}"


class DropoutTower(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, 16), nn.GELU(), nn.Dropout(0.3), nn.Linear(16, DIM))

    def forward(self, x):
        return self.net(x)


def run_gradcache(chunk_size=2, matryoshka=None):
    """GradCache + local loss + DDP with dropout; the reference replays each rank's random stream.
    `matryoshka` = (dims, weights): the loss summed over the cut widths, on both sides."""
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(123)
    tower = DropoutTower().double()
    reference_model = copy.deepcopy(tower)
    model = DistributedDataParallel(tower)
    syncs = [0]

    def counting_allreduce(state, bucket):
        syncs[0] += 1
        return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(
            lambda fut: fut.value()[0] / world
        )

    model.register_comm_hook(None, counting_allreduce)
    temperature = Temperature(0.05, tasks=TASKS).double()
    reference_temperature = copy.deepcopy(temperature)
    ranks = global_batch((5, 5), (2, 1), seed=99)
    mine, full = ranks[rank], full_batch(ranks)
    options = dict(filters=NegativeFilters(false_negative_margin=0.2, top_k=4, hardness_alpha=3.0, symmetric=True))

    def local_loss(query, candidates):
        return local_contrastive_loss(query, candidates, temperature=temperature(mine["tasks"]),
                                      candidate_modality=mine["candidate_modality"], **options)

    def loss_fn(query, candidates):
        return local_loss(query, candidates) if matryoshka is None else matryoshka_loss(local_loss, query, candidates,
                                                                                       *matryoshka)

    torch.manual_seed(1000 + rank)
    loss = GradCache([model, model], loss_fn, chunk_size).step(mine["x_query"].double(), mine["x_candidates"].double())
    syncs_gradcache = syncs[0]
    all_reduce_gradients(temperature.parameters())
    got = [p.grad.clone() for p in model.parameters()] + [p.grad.clone() for p in temperature.parameters()]
    dist.all_reduce(loss)
    loss /= world

    # One plain DDP step counts the synchronisations of a normal step (one per gradient bucket).
    model.zero_grad(set_to_none=True)
    model(mine["x_query"].double()).sum().backward()
    syncs_plain = syncs[0] - syncs_gradcache

    # Reference: each rank's chunks embedded in the order GradCache drew their dropout masks on that rank.
    queries, candidates = [], []
    for r, part in enumerate(ranks):
        torch.manual_seed(1000 + r)
        queries += [reference_model(c) for c in split_batch(part["x_query"].double(), chunk_size)]
        candidates += [reference_model(c) for c in split_batch(part["x_candidates"].double(), chunk_size)]
    def reference_at(query, candidate):
        return contrastive_loss(query, candidate, full["positive"], temperature=reference_temperature(full["tasks"]),
                                candidate_modality=full["candidate_modality"], **options)

    queries, candidates = torch.cat(queries), torch.cat(candidates)
    if matryoshka is None:
        reference_loss = reference_at(queries, candidates)
    else:  # a hand loop over the widths: each prefix re-normalised
        reference_loss = sum(weight * reference_at(nn.functional.normalize(queries[:, :dim], dim=-1),
                                                   nn.functional.normalize(candidates[:, :dim], dim=-1))
                             for dim, weight in zip(*matryoshka))
    reference_loss.backward()
    want = [p.grad for p in reference_model.parameters()] + [p.grad for p in reference_temperature.parameters()]
    verdict = compare(got, want, loss, reference_loss.detach())
    if verdict == "ok" and syncs_gradcache != syncs_plain:
        verdict = (f"mismatch: {syncs_gradcache} gradient synchronisations in one GradCache step, "
                   f"{syncs_plain} in a plain step")
    return verdict


def token_inputs(count, length, seed):
    """`count` items of 1..`length` tokens (one of full length): features count x length x FEATURES, mask."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, length + 1, (count,), generator=g)
    sizes[0] = length
    mask = torch.arange(length)[None, :] < sizes[:, None]
    return torch.randn(count, length, FEATURES, generator=g).double(), mask


def tokens_of(model, features, mask):
    """Per-token unit vectors with zero rows at padding, as the late-interaction head writes them."""
    return nn.functional.normalize(model(features), dim=-1) * mask[..., None]


def pad_length(tensor, length):
    return nn.functional.pad(tensor, (0, 0, 0, length - tensor.shape[1]))


def run_late_interaction(model, local_only=False):
    """Multi-vector InfoNCE over MaxSim with cross-rank negatives: ranks hold different numbers of queries, of
    hard negatives, and different token lengths (documents are padded to the longest of any rank). The
    reference holds every query and document in one process (candidates: all positives, then all negatives).
    `local_only`: each rank scores its own documents only (no gather), which must NOT match."""
    rank = dist.get_rank()
    layout = [dict(queries=3, negatives=1, query_length=4, doc_length=5),
              dict(queries=4, negatives=2, query_length=3, doc_length=7)]
    parts = []
    for r, part in enumerate(layout):
        queries = token_inputs(part["queries"], part["query_length"], seed=10 + r)
        documents = token_inputs(part["queries"] + part["negatives"], part["doc_length"], seed=20 + r)
        parts.append((queries, documents))
    reference_model = copy.deepcopy(model.module)
    model.zero_grad(set_to_none=True)
    (q_features, q_mask), (d_features, d_mask) = parts[rank]
    flat = model(torch.cat([q_features.flatten(0, 1), d_features.flatten(0, 1)]))
    q_tokens = nn.functional.normalize(flat[: q_mask.numel()].view(*q_mask.shape, DIM), dim=-1) * q_mask[..., None]
    d_tokens = nn.functional.normalize(flat[q_mask.numel():].view(*d_mask.shape, DIM), dim=-1) * d_mask[..., None]
    if local_only:
        loss = late_interaction_loss(q_tokens, d_tokens, temperature=0.05)
    else:
        loss = local_late_interaction_loss(q_tokens, d_tokens, temperature=0.05)
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss /= dist.get_world_size()
    got = [p.grad for p in model.parameters()]

    query_length = max(part["query_length"] for part in layout)
    doc_length = max(part["doc_length"] for part in layout)
    queries = torch.cat([pad_length(tokens_of(reference_model, *q), query_length) for q, _ in parts])
    documents = [pad_length(tokens_of(reference_model, *d), doc_length) for _, d in parts]
    sizes = [part["queries"] for part in layout]
    candidates = torch.cat([d[:n] for d, n in zip(documents, sizes)] + [d[n:] for d, n in zip(documents, sizes)])
    reference_loss = late_interaction_loss(queries, candidates, temperature=0.05)
    reference_loss.backward()
    return compare(got, [p.grad for p in reference_model.parameters()], mean_loss, reference_loss.detach())


SCENARIOS = [
    ("plain_infonce", set(), {}),
    ("modality_mask", {"modality"}, {}),
    ("false_negative_filter", {"fn_filter"}, {}),
    ("top_k", {"top_k"}, {}),
    ("hardness_weights", {"hardness"}, {}),
    ("appended_hard_negatives", set(), {"negative_sizes": (3, 2)}),
    ("symmetric", {"symmetric"}, {}),
    ("learnable_temperature", set(), {"temperature_kind": "scalar"}),
    ("per_task_temperature", {"symmetric"}, {"temperature_kind": "per_task"}),
    ("uneven_local_batches", {"symmetric", "top_k"}, {"query_sizes": (3, 5), "negative_sizes": (1, 2)}),
    ("everything", {"modality", "fn_filter", "top_k", "hardness", "symmetric"},
     {"negative_sizes": (2, 3), "temperature_kind": "per_task"}),
    ("control:no_gradient", set(), {}),
    ("control:local_slice_only", set(), {}),
]


def main() -> int:
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Linear(FEATURES, DIM).double())
    results = {}
    for name, options, layout in SCENARIOS:
        results[name] = run_scenario(name, options, model, **layout)
    results["gradcache_ddp"] = run_gradcache()
    results["gradcache_ddp_matryoshka"] = run_gradcache(matryoshka=([DIM, 3, 2], [1.0, 0.5, 2.0]))
    results["late_interaction_cross_rank"] = run_late_interaction(model)
    results["control:late_interaction_local_only"] = run_late_interaction(model, local_only=True)
    write_results_and_exit(sys.argv[1], results, lambda everyone: {"results": agreed(everyone, results)})


def agreed(everyone: list[dict[str, str]], results: dict[str, str]) -> dict[str, str]:
    """Each check's verdict: the ranks' common one, or every rank's joined by ' | ' where they differ."""
    merged = {name: [r[name] for r in everyone] for name in results}
    return {name: verdicts[0] if len(set(verdicts)) == 1 else " | ".join(verdicts) for name, verdicts in merged.items()}


if __name__ == "__main__":
    sys.exit(main())
