"""Model soups (RzenEmbed; docs/methods.md §5): weight averages of checkpoints fine-tuned from one base.

- uniform soup: the (optionally weighted) mean of every ingredient's weights.
- greedy soup: ingredients sorted by their validation score, best first; each is added when the soup's
  validation score does not drop (Wortsman et al.). Validation runs `uniembed.eval.evaluate` on held-out
  data the caller names, never on the test data that results are reported on.

Ingredients must share the architecture (the HF `config.json`), the tensor names and shapes, and the
embedding config (`uniembed.json`); otherwise the soup is refused with the differing option named.
LoRA adapter checkpoints are merged into their base before averaging; merged checkpoints average as they
are. The soup is saved with `Embedder.save_pretrained`: a normal checkpoint that loads anywhere, with
`soup.json` beside it recording ingredients, weights and validation scores.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .errors import ConfigError, InputError
from .models.config import SavedModelInfo
from .models.embedder import Embedder

log = logging.getLogger(__name__)
SOUP_FILE = "soup.json"
# HF config entries that say nothing about the architecture
_CONFIG_NOISE = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "_commit_hash", "use_cache"}

Scorer = Callable[[Embedder], float]


@dataclass
class Ingredient:
    """A checkpoint to average: where it is, whether it is a LoRA adapter, and what it must agree on."""

    path: Path
    adapter: bool
    base_model: str | None
    architecture: dict[str, Any]
    embedding: dict[str, Any]
    backbone: str = ""


def inspect_ingredient(path: str | os.PathLike) -> Ingredient:
    """Read an ingredient's configs (no weights) and say clearly when the folder is not a checkpoint."""
    directory = Path(path)
    if not directory.is_dir():
        raise InputError("soup ingredient not found", path=directory, fix="pass checkpoint directories to --inputs")
    adapter = (directory / "adapter_config.json").exists()
    info = SavedModelInfo.load(directory)
    weights_dir = directory
    base = None
    if adapter:
        base = (info.base_model if info and info.base_model
                else json.loads((directory / "adapter_config.json").read_text()).get("base_model_name_or_path"))
        if not base or not Path(base).is_dir():
            raise InputError(f"LoRA adapter's base model '{base}' is not a local directory", path=directory,
                             fix="set base_model in uniembed.json to the base checkpoint's path")
        weights_dir = Path(base)
    config_file = weights_dir / "config.json"
    if not config_file.exists():
        stages = sorted(p.name for p in directory.glob("stage*-*") if (p / "config.json").exists())
        raise InputError("not a checkpoint directory (no config.json)", path=directory,
                         fix=f"pass a stage output folder such as {directory / stages[-1]}" if stages else
                         "pass a folder written by save_pretrained or a training stage")
    architecture = {k: v for k, v in json.loads(config_file.read_text()).items() if k not in _CONFIG_NOISE}
    if info is not None:
        embedding = info.embedding.to_dict()
    else:
        from .models.backbones import backbone_for

        embedding = Embedder.default_config(backbone_for(architecture.get("model_type", ""))).to_dict()
    return Ingredient(directory, adapter, str(Path(base).resolve()) if base else None, architecture, embedding,
                      info.backbone if info else "")


def check_compatible(ingredients: Sequence[Ingredient]) -> None:
    """Refuse ingredients that differ in embedding config, architecture or LoRA base, naming the difference."""
    if len(ingredients) < 2:
        raise ConfigError("a soup needs at least two --inputs")
    first = ingredients[0]
    for other in ingredients[1:]:
        for what, mine, theirs in (("embedding option", first.embedding, other.embedding),
                                   ("architecture setting (config.json)", first.architecture, other.architecture)):
            differing = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            if differing:
                shown = "; ".join(f"{k}: {mine.get(k)!r} vs {theirs.get(k)!r}" for k in differing[:5])
                raise ConfigError(f"cannot soup '{first.path}' with '{other.path}': they differ in {what} "
                                  f"{', '.join(differing)} ({shown}); only checkpoints fine-tuned from the same "
                                  "base with the same embedding config average meaningfully")
        if first.adapter and other.adapter and first.base_model != other.base_model:
            raise ConfigError(f"LoRA adapters '{first.path}' and '{other.path}' were trained on different bases "
                              f"('{first.base_model}' vs '{other.base_model}'); if these are copies of one "
                              "checkpoint, point both adapters at the same base directory")


def load_ingredient(ingredient: Ingredient, dtype: str | torch.dtype | None = None) -> Embedder:
    """The ingredient as a plain (merged) Embedder on CPU: an adapter is folded into its base here."""
    embedder = Embedder.from_pretrained(ingredient.path, dtype=dtype)
    model = embedder.backbone.model
    if hasattr(model, "merge_and_unload"):
        embedder.backbone.model = model.merge_and_unload()
        embedder = Embedder(embedder.backbone, embedder.config, limits=embedder.limits, source=str(ingredient.path),
                            head=embedder.module.head)
    return embedder


HEAD_PREFIX = "late_interaction_head."  # a multi-vector model's head is averaged with the backbone


def weights_of(embedder: Embedder) -> dict[str, torch.Tensor]:
    """The backbone's state dict, plus the late-interaction head's (under `HEAD_PREFIX`) when it has one."""
    state = dict(embedder.backbone.model.state_dict())
    if embedder.module.head is not None:
        state.update({HEAD_PREFIX + name: value for name, value in embedder.module.head.state_dict().items()})
    return state


@dataclass
class WeightSum:
    """A running weighted sum of state dicts, in float32; `mean()` divides by the total weight.

    Floating tensors are summed; integer/bool buffers must be equal in every ingredient and are kept.
    """

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    total: float = 0.0
    count: int = 0
    names: list[str] = field(default_factory=list)

    def add(self, state: dict[str, torch.Tensor], weight: float = 1.0, name: str = "") -> None:
        if self.count:
            check_same_tensors(self.tensors, state, self.names[0], name)
        for key, value in state.items():
            value = value.detach().to("cpu")
            if not value.is_floating_point():
                if key not in self.tensors:
                    self.tensors[key] = value.clone()
                elif not torch.equal(self.tensors[key], value):
                    raise ConfigError(f"non-float tensor '{key}' differs between '{self.names[0]}' and '{name}'")
                continue
            term = value.to(torch.float32, copy=True) if weight == 1.0 else value.to(torch.float32) * weight
            if key in self.tensors:
                self.tensors[key] += term
            else:
                self.tensors[key] = term
        self.total += weight
        self.count += 1
        self.names.append(name)

    def mean(self, extra: tuple[dict[str, torch.Tensor], float] | None = None) -> dict[str, torch.Tensor]:
        """The average; with `extra` = (state, weight), the average as if that state had been added too."""
        if extra is None:
            return {k: v / self.total if v.is_floating_point() else v for k, v in self.tensors.items()}
        state, weight = extra
        check_same_tensors(self.tensors, state, self.names[0], "candidate")
        total = self.total + weight
        out = {}
        for key, value in self.tensors.items():
            if value.is_floating_point():
                term = state[key].detach().to("cpu", torch.float32)
                out[key] = (value + (term if weight == 1.0 else term * weight)) / total
            else:
                out[key] = value
        return out


def check_same_tensors(reference: dict[str, torch.Tensor], state: dict[str, torch.Tensor], ref_name: str,
                       name: str) -> None:
    """Same tensor names and shapes, or a ConfigError naming the first difference."""
    missing, extra = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
    if missing or extra:
        raise ConfigError(f"'{name}' and '{ref_name}' hold different tensors (only in '{ref_name}': {missing[:3]}, "
                          f"only in '{name}': {extra[:3]}); soups need checkpoints of the same architecture")
    for key, value in reference.items():
        if tuple(value.shape) != tuple(state[key].shape):
            raise ConfigError(f"tensor '{key}' has shape {tuple(state[key].shape)} in '{name}' but "
                              f"{tuple(value.shape)} in '{ref_name}'; soups need checkpoints of the same architecture")


def apply_weights(embedder: Embedder, state: dict[str, torch.Tensor]) -> None:
    """Load averaged weights into the embedder's model and head (cast to their dtype and device)."""
    head = {name[len(HEAD_PREFIX):]: value for name, value in state.items() if name.startswith(HEAD_PREFIX)}
    embedder.backbone.model.load_state_dict({k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)},
                                            strict=True)
    if embedder.module.head is not None:
        embedder.module.head.load_state_dict(head, strict=True)
    embedder.invalidate_fingerprint()


@dataclass
class SoupResult:
    embedder: Embedder
    record: dict[str, Any]


def uniform_soup(paths: Sequence[str | os.PathLike], weights: Sequence[float] | None = None, *,
                 dtype: str | torch.dtype | None = None, scorer: Scorer | None = None,
                 device: str | None = None) -> SoupResult:
    """The weighted (default: uniform) mean of the ingredients. With `scorer`, every ingredient and the soup
    are scored too (recorded in soup.json; nothing is chosen by it)."""
    ingredients = [inspect_ingredient(path) for path in paths]
    check_compatible(ingredients)
    weights = _weights(weights, len(ingredients))
    soup = load_ingredient(ingredients[0], dtype)
    total = WeightSum()
    scores: list[float | None] = [None] * len(ingredients)
    for number, (ingredient, weight) in enumerate(zip(ingredients, weights)):
        embedder = soup if number == 0 else load_ingredient(ingredient, dtype)
        if scorer is not None:
            scores[number] = _score(scorer, embedder, device)
        total.add(weights_of(embedder), weight, str(ingredient.path))
        del embedder
    apply_weights(soup, total.mean())
    soup_score = _score(scorer, soup, device) if scorer is not None else None
    record = _record("uniform", ingredients, [w / sum(weights) for w in weights], scores,
                     [True] * len(ingredients), soup_score)
    return SoupResult(soup, record)


def greedy_soup(paths: Sequence[str | os.PathLike], scorer: Scorer, *, dtype: str | torch.dtype | None = None,
                device: str | None = None) -> SoupResult:
    """Greedy soup: best ingredient first, then each in order of score, kept when the soup's score does not drop."""
    ingredients = [inspect_ingredient(path) for path in paths]
    check_compatible(ingredients)
    scores = []
    for ingredient in ingredients:
        embedder = load_ingredient(ingredient, dtype)
        scores.append(_score(scorer, embedder, device))
        log.info("ingredient %s: validation score %.4f", ingredient.path, scores[-1])
        del embedder
    order = sorted(range(len(ingredients)), key=lambda i: -scores[i])  # stable: ties keep input order
    soup = load_ingredient(ingredients[order[0]], dtype)
    total = WeightSum()
    total.add(weights_of(soup), 1.0, str(ingredients[order[0]].path))
    kept = [False] * len(ingredients)
    kept[order[0]] = True
    best = scores[order[0]]
    steps = [{"ingredient": str(ingredients[order[0]].path), "soup_score": best, "kept": True}]
    for number in order[1:]:
        state = weights_of(load_ingredient(ingredients[number], dtype))
        apply_weights(soup, total.mean(extra=(state, 1.0)))
        candidate = _score(scorer, soup, device)
        keep = candidate >= best
        steps.append({"ingredient": str(ingredients[number].path), "soup_score": candidate, "kept": keep})
        log.info("greedy soup + %s: %.4f (%s)", ingredients[number].path, candidate, "kept" if keep else "dropped")
        if keep:
            total.add(state, 1.0, str(ingredients[number].path))
            kept[number] = True
            best = candidate
    apply_weights(soup, total.mean())
    members = sum(kept)
    record = _record("greedy", ingredients, [1.0 / members if k else 0.0 for k in kept], scores, kept, best)
    record["greedy_steps"] = steps
    return SoupResult(soup, record)


def validation_scorer(suite: str, data: str | os.PathLike, datasets: Sequence[str] | None = None,
                      batch_size: int = 32) -> tuple[Scorer, dict[str, Any]]:
    """A scorer that runs `uniembed.eval.evaluate` on held-out data (tasks read once) and returns `overall`."""
    from .eval.evaluate import evaluate
    from .eval.suites import SuiteOptions, get_suite

    tasks = get_suite(suite).load_tasks(data, SuiteOptions(datasets=list(datasets) if datasets else None))

    def score(embedder: Embedder) -> float:
        return float(evaluate(embedder, suite, data, tasks=tasks, batch_size=batch_size, progress=False).payload["overall"])

    description = {"suite": suite, "data": str(Path(data).resolve()), "datasets": [t.name for t in tasks],
                   "metric": "overall (mean of task scores, percent)"}
    return score, description


def save_soup(result: SoupResult, out: str | os.PathLike, inputs: Sequence[str | os.PathLike] = (),
              validation: dict[str, Any] | None = None) -> Path:
    """Write the soup checkpoint and soup.json; refuses to overwrite one of its own ingredients."""
    out = Path(out)
    if any(out.resolve() == Path(p).resolve() for p in inputs):
        raise ConfigError(f"--out '{out}' is one of the --inputs; write the soup to a new directory")
    result.embedder.save_pretrained(out)
    record = dict(result.record)
    if validation is not None:
        record["validation"] = validation
    (out / SOUP_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return out


def _weights(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0] * count
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise ConfigError(f"{len(weights)} --weights for {count} --inputs; give one weight per input")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError("--weights must be non-negative with a positive sum")
    return weights


def _score(scorer: Scorer, embedder: Embedder, device: str | None) -> float:
    if device is not None:
        embedder.to(device)
    try:
        return float(scorer(embedder))
    finally:
        if device is not None:
            embedder.to("cpu")


def _record(method: str, ingredients: Sequence[Ingredient], weights: Sequence[float], scores: Sequence[float | None],
            kept: Sequence[bool], soup_score: float | None) -> dict[str, Any]:
    return {
        "method": method,
        "ingredients": [{"path": str(i.path), "adapter": i.adapter, "base_model": i.base_model, "weight": w,
                         "validation_score": s, "kept": k} for i, w, s, k in zip(ingredients, weights, scores, kept)],
        "weights": list(weights),
        "soup_validation_score": soup_score,
    }
