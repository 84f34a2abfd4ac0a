"""The GPU benchmark: one run on one H100/H200 (< 8 minutes) that writes benchmarks/results/gpu-DATE.md.

Sections, each in its own child process with its own time cap (a crash, an out-of-memory or a hang in one
section costs that section only; the report is rewritten after every section, so partial results survive):

1. environment: GPU, torch, CUDA, bf16, flash-attn / DeepSpeed present or not (nothing is downloaded).
2. model: a random Qwen2-VL at Qwen2-VL-2B's real sizes (`QWEN2_VL_2B` below; built like models/tiny.py builds
   the tiny ones, random weights, bf16), saved once to a temporary folder and loaded by every later section.
3. data: the synthetic benchmark (MMEB-V1/V2 and MMEB-train layouts, `uniembed synth`) with enough training rows
   for batch 1024.
4. train: the shipped recipes (recipes/vlm2vec.yaml, recipes/unite.yaml) through `Trainer`, their own options
   (LoRA, gradient checkpointing, GradCache chunk 32, masks), global batch 1024 for a few steps:
   pairs/s, tokens/s, MFU, peak memory; vlm2vec once more at batch 256 to show GradCache's flat memory; vlm2vec
   with `packing: off` and `on` (the pair: same steps, same batches).
5. encode: items/s for text, image and video items with SDPA, and with FlashAttention-2 when installed, each with
   `packing: off` and `on`.
6. eval: uniembed's evaluation runner against the reference strategy (benchmarks/eval_speed.py's
   `run_reference`) on the synthetic MMEB-layout suite, cold cache and warm cache, in one process (whole-process
   timings and torchrun scaling: benchmarks/eval_speed.py itself).

MFU counts the model's useful FLOPs (the PaLM convention, attention-score FLOPs left out: sequences here are a
few hundred tokens), per step:
    forward                2 * N_lm * T + 2 * N_vit * P
    activation gradients   2 * N_lm * T (when anything in the language model trains) + 2 * N_vit * P (same, vision)
    weight gradients       2 * N_lm_trainable * T + 2 * N_vit_trainable * P
with T the step's tokens through the language model, P the image/video patches through the vision tower,
N_lm the language model's matrix parameters (its layers; the embedding lookup and LM head do no matmul work
for embeddings), N_vit the vision tower's. Full fine-tuning gives the usual 6 * N * T. GradCache's extra
no-grad forward and gradient checkpointing's recomputation are work the hardware does but not useful FLOPs
(they are in "HFU"). MFU = FLOPs per step / seconds per step / peak; peak = the GPU's dense bf16 tensor rate
(`PEAK_BF16_TFLOPS`: H100 / H200 SXM 989.4 TFLOP/s, NVIDIA's H100 datasheet), or --peak-tflops.

`--smoke` runs every section at tiny size on CPU in well under a minute (tests/test_gpu_benchmark.py), so the
script is known to work the day a GPU is at hand.

    benchmarks/gpu/run.sh                  # on the GPU machine
    benchmarks/gpu/run.sh --smoke --out /tmp/gpu-smoke.md
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
RECIPES = ROOT / "recipes"

# Qwen2-VL-2B's geometry: the language model of Qwen2-1.5B (hidden 1536, 28 layers, 12 heads / 2 KV heads, MLP 8960,
# vocabulary 151936, tied embeddings, rope theta 1e6, M-RoPE sections 16/24/24) and the Qwen2-VL vision tower
# (depth 32, width 1280, 16 heads, MLP ratio 4, patch 14, 2x2 merge into 1536: transformers 5.23
# models/qwen2_vl/configuration_qwen2_vl.py Qwen2VLVisionConfig defaults, with hidden_size set to the LM's width);
# the same values as benchmarks/encode_throughput.py --gpu-2b. Built, it counts 2,208,985,600 parameters
# (1.310B in language-model layers, 0.665B in the vision tower): the 2.2B of Qwen/Qwen2-VL-2B-Instruct.
QWEN2_VL_2B = {
    "text": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                 tie_word_embeddings=True,
                 rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}),
    "vision": dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2),
}
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "H800": 989.4, "A100": 312.0, "L40S": 362.1, "B200": 2250.0}


@dataclass
class Scale:
    """Everything that differs between the GPU run and the CPU smoke run (the code is the same)."""

    name: str
    model: str  # "2b": QWEN2_VL_2B in bf16; "tiny": models/tiny.py's tiny size in fp32
    train_rows: int  # rows per synthetic training subset (>= batch, so batches are full)
    test_queries: int  # queries per synthetic test task
    batch: int
    memory_batch: int  # the second vlm2vec run, for GradCache's flat memory
    chunk: int
    steps: int  # per stage; the first is warm-up, the rest are timed
    visual_tokens: int  # images resized to this many visual tokens (min_pixels = max_pixels)
    encode_count: int
    encode_batch: int
    eval_batch: int
    eval_tasks: int | None  # the first N tasks of the suite (None: all)
    budget_s: float  # the whole run
    in_process: bool  # sections as functions of this process (smoke: one import of torch instead of nine)
    caps: dict[str, float] = field(default_factory=dict)  # per-section time caps (seconds)


GPU = Scale("gpu", "2b", train_rows=1100, test_queries=50, batch=1024, memory_batch=256, chunk=32, steps=3,
            visual_tokens=256, encode_count=512, encode_batch=64, eval_batch=128, eval_tasks=None, budget_s=450,
            in_process=False,
            caps={"environment": 30, "model": 75, "data": 75, "train vlm2vec": 100, "train vlm2vec memory": 45,
                  "train vlm2vec packing": 100, "train unite": 150, "encode sdpa": 45, "encode sdpa packing": 45,
                  "encode flash_attention_2": 45, "encode flash_attention_2 packing": 45, "eval": 75,
                  "vllm": 120})  # vllm: last, skipped when the budget is spent
# smoke: generous caps, it checks that the code runs (on a quiet 2-core CPU the whole takes ~20 s; a loaded
# shared machine can take minutes just to import torch and transformers)
SMOKE = Scale("smoke", "tiny", train_rows=8, test_queries=4, batch=8, memory_batch=4, chunk=2, steps=2,
              visual_tokens=4, encode_count=8, encode_batch=4, eval_batch=8, eval_tasks=1, budget_s=840, in_process=True,
              caps=dict.fromkeys(GPU.caps, 240.0))


# ---- sections (each runs in a child process: `bench.py --child NAME`) -----------------------------------------
def section_environment(scale: Scale, work: Path, **_: Any) -> dict:
    import platform

    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda, bf16=torch.cuda.is_bf16_supported(),
                    gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    for package in ("flash_attn", "deepspeed", "faiss", "transformers", "peft"):
        spec = importlib.util.find_spec(package)
        info[package] = _version(package) if spec else "not installed"
    return info


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in (package, package.replace("_", "-"), f"{package}-cpu"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "installed"


def section_model(scale: Scale, work: Path, **_: Any) -> dict:
    """Build the random model once and save it (bf16 on CUDA) where every later section loads it from."""
    import torch

    from uniembed import Embedder
    from uniembed.models.backbones.qwen2_vl import Qwen2VLBackbone
    from uniembed.models.backbones.qwen2_vl import build_image_processor, build_tiny_model
    from uniembed.models.tiny import SPECIAL_TOKENS, build_tokenizer

    tokenizer = build_tokenizer()
    cuda = torch.cuda.is_available()
    if scale.model == "tiny":
        model = build_tiny_model(tokenizer, "tiny")
    else:
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        config = Qwen2VLConfig(text_config=dict(QWEN2_VL_2B["text"], eos_token_id=ids["<|im_end|>"],
                                                pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"]),
                               vision_config=QWEN2_VL_2B["vision"], image_token_id=ids["<|image_pad|>"],
                               video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                               vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True)
        config._attn_implementation = "sdpa"
        torch.manual_seed(0)
        with torch.device("cuda" if cuda else "cpu"):  # random init on the GPU: seconds instead of minutes
            model = Qwen2VLForConditionalGeneration(config).to(torch.bfloat16)
    pixels = scale.visual_tokens * 28 * 28
    backbone = Qwen2VLBackbone(model.eval(), tokenizer, build_image_processor(), f"random-qwen2-vl-{scale.model}")
    embedder = Embedder(backbone, Embedder.default_config(Qwen2VLBackbone).replace(
        min_pixels=pixels, max_pixels=pixels, video_max_pixels=max(pixels // 4, 4 * 28 * 28)))
    embedder.save_pretrained(work / "model")
    counts = parameter_counts(model)
    del model, embedder
    return {"path": str(work / "model"), "dtype": "bfloat16" if scale.model == "2b" else "float32",
            "parameters": counts, "visual_tokens_per_image": scale.visual_tokens}


def parameter_counts(module: Any) -> dict[str, int]:
    """Matrix parameters of the language model's layers and of the vision tower, and how many of each train."""
    counts = {"language_model": 0, "vision": 0, "language_model_trainable": 0, "vision_trainable": 0, "total": 0}
    for name, parameter in module.named_parameters():
        counts["total"] += parameter.numel()
        if "embed_tokens" in name or "lm_head" in name:
            continue
        part = "vision" if "visual" in name.split(".") else "language_model"
        if "lora_" not in name:
            counts[part] += parameter.numel()
        if parameter.requires_grad:
            counts[f"{part}_trainable"] += parameter.numel()
    return counts


def section_data(scale: Scale, work: Path, **_: Any) -> dict:
    import yaml

    from uniembed.data.synth.generate import SizeConfig, generate
    from uniembed.demo import write_mixtures

    start = time.perf_counter()
    generate(work / "synth", size=SizeConfig(test_queries=scale.test_queries, train_rows=scale.train_rows), seed=0,
             progress=False)
    paths = write_mixtures(work / "synth", work / "mixtures")
    # sources whose every row has its own target: batches of `batch` distinct targets
    mixture = yaml.safe_load(paths["stage2"].read_text())
    chosen = [s for s in mixture["sources"] if s["name"] in ("SynT2I", "SynI2T", "SynCIR", "SynVQA")]
    (work / "train_mixture.yaml").write_text(yaml.safe_dump({"sources": chosen or mixture["sources"]}))
    return {"suite": str(work / "synth"), "train_rows_per_subset": scale.train_rows,
            "test_queries_per_task": scale.test_queries, "sources": [s["name"] for s in chosen],
            "seconds": round(time.perf_counter() - start, 1)}


def section_train(scale: Scale, work: Path, recipe: str, batch: int, steps: int | None = None, packing: str = "auto",
                  **_: Any) -> dict:
    import torch

    from uniembed.training.recipe import load_recipe
    from uniembed.training.trainer import StageRunner, Trainer

    pixels = scale.visual_tokens * 28 * 28
    steps = steps or scale.steps
    overrides = [f"model={work / 'model'}", "save_every=0", "log_every=1", f"stages.*.max_steps={steps}",
                 "stages.*.epochs=null", f"stages.*.batch_size={batch}", f"stages.*.grad_cache_chunk={scale.chunk}",
                 f"stages.*.data={work / 'train_mixture.yaml'}", f"embedding.min_pixels={pixels}",
                 f"embedding.max_pixels={pixels}", f"embedding.packing={packing}"]
    loaded = load_recipe(RECIPES / f"{recipe}.yaml", overrides)
    stages: list[dict] = []

    class MeasuredRunner(StageRunner):
        """The stage as it runs, plus what the benchmark counts: tokens and patches per batch, step times."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.batches: list[tuple[int, int]] = []  # (tokens, patches) per prepared batch, in order
            self.step_times: list[float] = []
            super().__init__(*args, **kwargs)
            self.counts = parameter_counts(self.module)

        def prepare_batch(self, batch: Any) -> Any:
            prepared = super().prepare_batch(batch)
            tokens = sum(len(p.tokens[0]) for p in prepared)
            patches = sum(int(v.pixel_values.shape[0]) for p in prepared for v in p.tokens[2])
            self.batches.append((tokens, patches))
            return prepared

        def run(self) -> None:
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            super().run()
            stages.append(self.summary(time.perf_counter() - started))

        def _optimizer_step(self, loss: float) -> float:
            norm = super()._optimizer_step(loss)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.step_times.append(time.perf_counter())
            return norm

        def summary(self, seconds: float) -> dict:
            timed = len(self.step_times) - 1
            per_step = (self.step_times[-1] - self.step_times[0]) / timed if timed > 0 else float("nan")
            tokens = sum(t for t, _ in self.batches[1: 1 + timed]) / max(timed, 1)
            patches = sum(p for _, p in self.batches[1: 1 + timed]) / max(timed, 1)
            items = batch * (2 + getattr(self.stage.loss, "num_negatives", 0))
            useful, hardware = step_flops(self.counts, tokens, patches, grad_cache=self.stage.grad_cache_chunk is not None,
                                          checkpointing=self.recipe.gradient_checkpointing)
            return {"stage": self.stage.name, "steps": len(self.step_times), "timed_steps": timed,
                    "seconds_per_step": round(per_step, 3), "pairs_per_s": round(batch / per_step, 2),
                    "items_per_step": items, "tokens_per_step": int(tokens), "patches_per_step": int(patches),
                    "tokens_per_s": round(tokens / per_step, 1), "tflops_per_step": round(useful / 1e12, 2),
                    "achieved_tflops": round(useful / per_step / 1e12, 2),
                    "hardware_tflops": round(hardware / per_step / 1e12, 2),
                    "parameters": self.counts, "peak_memory_gib": peak_memory_gib(),
                    "stage_seconds": round(seconds, 1)}

    class MeasuredTrainer(Trainer):
        def stage_runner(self, index: int, stage: Any, resume_from: Any) -> StageRunner:
            return MeasuredRunner(self, index, stage, resume_from)

    run_dir = work / f"run-{recipe}-{batch}"
    shutil.rmtree(run_dir, ignore_errors=True)
    MeasuredTrainer(loaded, run_dir, show_progress=False).run()
    shutil.rmtree(run_dir, ignore_errors=True)  # merged 2B stage outputs: several GB
    return {"recipe": recipe, "batch": batch, "packing": packing, "grad_cache_chunk": scale.chunk,
            "gradient_checkpointing": loaded.gradient_checkpointing,
            "trainable": [asdict(loaded.stage_trainable(s)) | {"stage": s.name} for s in loaded.stages],
            "precision": "bf16 autocast" if torch.cuda.is_available() else "fp32 (CPU)", "stages": stages}


def step_flops(counts: dict[str, int], tokens: float, patches: float, grad_cache: bool, checkpointing: bool) -> tuple[float, float]:
    """(useful, hardware) FLOPs of one training step: the formula in the module docstring."""
    lm, vit = counts["language_model"], counts["vision"]
    lm_trains, vit_trains = counts["language_model_trainable"] > 0, counts["vision_trainable"] > 0
    forward = 2 * lm * tokens + 2 * vit * patches
    activation_grads = 2 * lm * tokens * lm_trains + 2 * vit * patches * vit_trains
    weight_grads = 2 * counts["language_model_trainable"] * tokens + 2 * counts["vision_trainable"] * patches
    useful = forward + activation_grads + weight_grads
    recompute = 2 * lm * tokens * lm_trains + 2 * vit * patches * vit_trains if checkpointing else 0
    return useful, useful + (forward if grad_cache else 0) + recompute


def peak_memory_gib() -> float:
    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)  # CPU: peak RSS (KiB -> GiB)


def section_encode(scale: Scale, work: Path, attention: str, packing: str = "auto", **_: Any) -> dict:
    import numpy as np
    import torch

    from uniembed import Embedder

    if attention == "flash_attention_2":
        if not torch.cuda.is_available():
            return {"skipped": "FlashAttention-2 needs CUDA"}
        if importlib.util.find_spec("flash_attn") is None:
            print("flash-attn is not installed: FlashAttention-2 not measured (pip install flash-attn)", flush=True)
            return {"skipped": "flash-attn not installed"}
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from encode_throughput import make_items, measure  # the CPU benchmark's items and timing, shared

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = Embedder.from_pretrained(work / "model", device=device, attn_implementation=attention, packing=packing)
    rng = np.random.default_rng(0)
    rows = {}
    for kind in ("text", "image", "video"):
        items = make_items(kind, scale.encode_count, rng)
        rows[kind] = round(measure(model, items, scale.encode_batch), 1)
        print(f"encode {attention} packing={packing} {kind}: {rows[kind]} items/s", flush=True)
    return {"attention": attention, "packing": packing, "items_per_s": rows, "batch_size": scale.encode_batch, "count": scale.encode_count,
            "dtype": str(model.backbone.hf_model.dtype), "peak_memory_gib": peak_memory_gib(),
            "items": "text ~15 words; image 224x224 + text; video 8 frames of 224x224 + text"}


def section_eval(scale: Scale, work: Path, **_: Any) -> dict:
    """benchmarks/eval_speed.py's strategies (uniembed's runner, the reference code's) on the synthetic suite."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import eval_speed

    from uniembed import Embedder
    from uniembed.encoding import EmbeddingCache
    from uniembed.eval.runner import run_tasks
    from uniembed.eval.suites import SuiteOptions, get_suite

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = Embedder.from_pretrained(work / "model", device=device)
    tasks = get_suite("synthetic").load_tasks(work / "synth", SuiteOptions())[: scale.eval_tasks]
    eval_speed.run_reference(model, tasks[:1], scale.eval_batch)  # warm-up: first-time kernel costs
    start = time.perf_counter()
    reference_scores, reference_encoded = eval_speed.run_reference(model, tasks, scale.eval_batch)
    reference = time.perf_counter() - start

    def uniembed_run() -> tuple[float, dict, int]:  # uniembed's runner, in this process (the model is loaded)
        cache = EmbeddingCache(work / "eval-cache", model.model_id)
        try:
            start = time.perf_counter()
            run = run_tasks(model, tasks, batch_size=scale.eval_batch, cache=cache, examples_per_task=0,
                            progress=False)
            return time.perf_counter() - start, {r.name: r.score for r in run.tasks}, run.stats.encoded
        finally:
            cache.close()

    cold, warm = uniembed_run(), uniembed_run()
    difference = max(abs(cold[1][name] - reference_scores[name]) for name in reference_scores)
    return {"tasks": len(tasks), "queries": sum(len(t.queries) for t in tasks), "batch_size": scale.eval_batch,
            "seconds": {"reference": round(reference, 2), "uniembed_cold": round(cold[0], 2),
                        "uniembed_warm": round(warm[0], 2)},
            "items_encoded": {"reference": reference_encoded, "uniembed_cold": cold[2], "uniembed_warm": warm[2]},
            "speedup_cold_vs_reference": round(reference / cold[0], 2),
            "speedup_warm_vs_reference": round(reference / warm[0], 2),
            "max_score_difference": round(difference, 4)}


def section_vllm(scale: Scale, work: Path, **_: Any) -> dict:
    """vLLM's pooling runner on the saved (exported) model against uniembed's vectors; skipped without vLLM."""
    from vllm_parity import vllm_parity

    return vllm_parity(work / "model")


SECTIONS: dict[str, tuple[Callable[..., dict], dict]] = {
    "environment": (section_environment, {}),
    "model": (section_model, {}),
    "data": (section_data, {}),
    "train vlm2vec": (section_train, {"recipe": "vlm2vec", "packing": "off"}),
    "train vlm2vec packing": (section_train, {"recipe": "vlm2vec", "packing": "on"}),  # the pair: same steps
    # fewer steps where the measurement allows: the whole run stays inside its 8 minutes
    "train vlm2vec memory": (section_train, {"recipe": "vlm2vec", "batch": "memory_batch", "steps": 2}),
    "train unite": (section_train, {"recipe": "unite", "steps": 2}),  # two stages, one timed step each
    "encode sdpa": (section_encode, {"attention": "sdpa", "packing": "off"}),
    "encode sdpa packing": (section_encode, {"attention": "sdpa", "packing": "on"}),
    "encode flash_attention_2": (section_encode, {"attention": "flash_attention_2", "packing": "off"}),
    "encode flash_attention_2 packing": (section_encode, {"attention": "flash_attention_2", "packing": "on"}),
    "eval": (section_eval, {}),
    "vllm": (section_vllm, {}),
}
NEEDS = {"train": ("model", "data"), "encode": ("model",), "eval": ("model", "data"), "vllm": ("model",)}


def section_result(name: str, scale: Scale, work: Path) -> dict:
    function, options = SECTIONS[name]
    options = {key: getattr(scale, value) if value in ("memory_batch",) else value for key, value in options.items()}
    if function is section_train:
        options.setdefault("batch", scale.batch)
    return function(scale, work, **options)


# ---- the driver ---------------------------------------------------------------------------------------------
def run_section(name: str, scale: Scale, work: Path, cap: float) -> dict:
    if scale.in_process:
        return run_section_here(name, scale, work, cap)
    command = [sys.executable, __file__, "--child", name, "--scale", scale.name, "--work", str(work)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=cap, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"")[-1500:] if isinstance(exc.stdout, bytes) else (exc.stdout or "")[-1500:]
        return {"status": f"stopped at its time cap ({cap:.0f} s)", "seconds": round(time.perf_counter() - start, 1),
                "output_tail": str(tail)}
    seconds = round(time.perf_counter() - start, 1)
    results = [line[len("RESULT "):] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    for line in done.stdout.splitlines():
        if not line.startswith("RESULT "):
            print(f"  [{name}] {line}", flush=True)
    if done.returncode != 0 or not results:
        return {"status": f"failed (exit {done.returncode})", "seconds": seconds, "error": done.stderr[-3000:]}
    result = json.loads(results[-1])
    status = "skipped: " + result["skipped"] if "skipped" in result else "ok"
    return {"status": status, "seconds": seconds, "result": result}


class SectionTimeout(Exception):
    pass


def run_section_here(name: str, scale: Scale, work: Path, cap: float) -> dict:
    """The section as a function call in this process, stopped by SIGALRM at its cap."""
    import signal

    def stop(*_: Any) -> None:
        raise SectionTimeout()

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(max(1, int(cap)))
    start = time.perf_counter()
    try:
        result = section_result(name, scale, work)
    except SectionTimeout:
        return {"status": f"stopped at its time cap ({cap:.0f} s)", "seconds": round(time.perf_counter() - start, 1)}
    except Exception as exc:  # noqa: BLE001  (one section's failure must not stop the others)
        return {"status": f"failed ({type(exc).__name__}: {exc})"[:300], "seconds": round(time.perf_counter() - start, 1),
                "error": traceback.format_exc()}
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    status = "skipped: " + result["skipped"] if "skipped" in result else "ok"
    return {"status": status, "seconds": round(time.perf_counter() - start, 1), "result": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU: checks the script, measures nothing")
    parser.add_argument("--out", help="report path (default: benchmarks/results/gpu-DATE.md, smoke: a temp file)")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), help="run only these (and what they need)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, when not in PEAK_BF16_TFLOPS")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (model, data)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scale", default="gpu", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    scale = SMOKE if args.smoke or args.scale == "smoke" else GPU
    if scale is SMOKE:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the smoke run is a CPU run, even on a GPU machine
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny matrices: threads only fight over shared cores
    if args.child:
        print("RESULT " + json.dumps(section_result(args.child, scale, Path(args.work))), flush=True)
        return 0

    today = datetime.date.today().isoformat()
    out = Path(args.out) if args.out else (RESULTS / f"gpu-{today}.md" if scale is GPU
                                           else Path(tempfile.gettempdir()) / f"gpu-smoke-{today}.md")
    names = list(SECTIONS)
    if args.sections:
        wanted = set(args.sections)
        for section in args.sections:
            wanted.update(NEEDS.get(section.split()[0], ()))
        names = [n for n in names if n in wanted or n == "environment"]
    work = Path(tempfile.mkdtemp(prefix="uniembed-gpu-bench-"))
    report: dict[str, Any] = {"date": today, "scale": asdict(scale), "command": " ".join(["benchmarks/gpu/run.sh", *(argv or sys.argv[1:])]),
                              "sections": {}}
    started = time.perf_counter()
    try:
        for name in names:
            left = scale.budget_s - (time.perf_counter() - started)
            needed = [n for n in NEEDS.get(name.split()[0], ()) if report["sections"].get(n, {}).get("status") != "ok"]
            if needed:
                entry = {"status": f"skipped: needs {', '.join(needed)}, which did not finish"}
            elif left < 15:
                entry = {"status": f"skipped: the run's time budget ({scale.budget_s:.0f} s) is spent"}
            else:
                print(f"== {name} (cap {min(scale.caps[name], left):.0f} s)", flush=True)
                entry = run_section(name, scale, work, min(scale.caps[name], left))
            print(f"   {name}: {entry['status']} ({entry.get('seconds', 0)} s)", flush=True)
            report["sections"][name] = entry
            report["total_seconds"] = round(time.perf_counter() - started, 1)
            write_report(report, out, args.peak_tflops)  # after every section: partial results survive
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder kept: {work}")
    print(f"report: {out}  (json beside it)")
    return 0 if all(s["status"].startswith(("ok", "skipped")) for s in report["sections"].values()) else 1


# ---- the report ---------------------------------------------------------------------------------------------
def peak_tflops(environment: dict, given: float | None) -> tuple[float | None, str]:
    if given:
        return given, f"{given} TFLOP/s (--peak-tflops)"
    gpu = environment.get("gpu", "")
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in gpu:
            return value, f"{value} TFLOP/s dense bf16 ({key})"
    return None, "unknown for this device (pass --peak-tflops): MFU not computed"


def write_report(report: dict, out: Path, given_peak: float | None) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    sections = report["sections"]
    environment = sections.get("environment", {}).get("result", {})
    peak, peak_text = peak_tflops(environment, given_peak)
    scale = report["scale"]
    lines = [f"# GPU benchmark ({report['date']}, {scale['name']} scale)", "",
             f"Command: `{report['command']}` · total {report.get('total_seconds', 0)} s · "
             f"device: {environment.get('gpu', 'CPU')} · torch {environment.get('torch', '?')} · "
             f"flash-attn: {environment.get('flash_attn', '?')} · peak used for MFU: {peak_text}", ""]
    model = sections.get("model", {}).get("result", {})
    if model:
        p = model["parameters"]
        lines += [f"Model: random Qwen2-VL at {'Qwen2-VL-2B' if scale['model'] == '2b' else 'tiny'} sizes, "
                  f"{p['total'] / 1e9:.3f}B parameters (language-model layers {p['language_model'] / 1e9:.3f}B, "
                  f"vision tower {p['vision'] / 1e9:.3f}B), {model['dtype']}; images at "
                  f"{model['visual_tokens_per_image']} visual tokens.", ""]
    lines += ["MFU = useful FLOPs per step / s per step / peak. Useful FLOPs = 2·N_lm·T + 2·N_vit·P (forward) + "
              "2·N_lm·T and 2·N_vit·P for each tower with something trainable (activation gradients) + "
              "2·N_trainable·T (weight gradients); T = tokens, P = vision patches per step; attention scores left "
              "out. HFU adds GradCache's no-grad forward and gradient checkpointing's recomputation. "
              "See benchmarks/gpu/bench.py.", "",
              "| section | status | seconds |", "|---|---|---:|"]
    lines += [f"| {name} | {entry['status']} | {entry.get('seconds', '')} |" for name, entry in sections.items()]
    train_rows = []
    for name, entry in sections.items():
        if name.startswith("train") and entry.get("status") == "ok":
            for stage in entry["result"]["stages"]:
                mfu = f"{100 * stage['achieved_tflops'] / peak:.1f}%" if peak else "n/a"
                hfu = f"{100 * stage['hardware_tflops'] / peak:.1f}%" if peak else "n/a"
                train_rows.append(f"| {entry['result']['recipe']} | {entry['result'].get('packing', '')} | {stage['stage']} | {entry['result']['batch']} | "
                                  f"{stage['seconds_per_step']} | {stage['pairs_per_s']} | {stage['tokens_per_s']:,.0f} | "
                                  f"{stage['achieved_tflops']} | {mfu} | {hfu} | {stage['peak_memory_gib']} |")
    if train_rows:
        lines += ["", "## Training (bf16 autocast, GradCache, the recipes' own options)", "",
                  "| recipe | packing | stage | global batch | s/step | pairs/s | tokens/s | TFLOP/s | MFU | HFU | peak memory GiB |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|", *train_rows]
        flat = [sections.get(n, {}).get("result") for n in ("train vlm2vec", "train vlm2vec memory")]
        if all(flat):
            big, small = flat[0]["stages"][0]["peak_memory_gib"], flat[1]["stages"][0]["peak_memory_gib"]
            lines += ["", f"GradCache memory: batch {flat[1]['batch']} -> {flat[0]['batch']} peak {small} -> {big} GiB "
                          f"({big / small if small else float('nan'):.2f}x for {flat[0]['batch'] / flat[1]['batch']:.0f}x the batch)."]
    encode_rows = []
    for name, entry in sections.items():
        if name.startswith("encode"):
            result = entry.get("result", {})
            rates = result.get("items_per_s", {})
            encode_rows.append(f"| {name.split()[1]} | {result.get('packing', '')} | {entry['status']} | {rates.get('text', '')} | {rates.get('image', '')} | "
                               f"{rates.get('video', '')} | {result.get('batch_size', '')} |")
    if encode_rows:
        lines += ["", "## Encode throughput (items/s)", "", "| attention | packing | status | text | image | video | batch |",
                  "|---|---|---|---:|---:|---:|---:|", *encode_rows]
    evaluation = sections.get("eval", {}).get("result")
    if evaluation:
        s = evaluation["seconds"]
        lines += ["", "## Evaluation (benchmarks/eval_speed.py strategies, synthetic MMEB-layout suite)", "",
                  f"{evaluation['tasks']} tasks, {evaluation['queries']} queries, batch {evaluation['batch_size']}: "
                  f"reference {s['reference']} s, uniembed cold {s['uniembed_cold']} s "
                  f"({evaluation['speedup_cold_vs_reference']}x), warm {s['uniembed_warm']} s "
                  f"({evaluation['speedup_warm_vs_reference']}x); items encoded {evaluation['items_encoded']}; "
                  f"largest score difference {evaluation['max_score_difference']} points."]
    failures = [(name, entry) for name, entry in sections.items() if not entry["status"].startswith(("ok", "skipped"))]
    for name, entry in failures:
        lines += ["", f"### {name}: {entry['status']}", "", "```text", (entry.get("error") or entry.get("output_tail") or "")[-1500:], "```"]
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # the driver itself must not die silently
        traceback.print_exc()
        sys.exit(1)
