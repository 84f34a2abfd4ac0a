"""Score kept per width and precision by trained models (issue 25, point 4), for benchmarks/compact.py.

Trains the demo's recipe (recipes/demo.yaml, tiny Qwen2-VL, synthetic benchmark) twice with the same seed and
steps, once with a Matryoshka loss over `MATRYOSHKA_DIMS` on both stages and once without, then evaluates each
with `evaluate(..., dimensions=, precisions=, rescore=)`: one encode, every width x precision scored. The same
grid is scored on scikit-learn's digits in an MMEB layout (`uniembed.data.synth.digits` builds it).
"""
from __future__ import annotations

import time
from pathlib import Path

MATRYOSHKA_DIMS = (96, 48, 24)  # tiny:mini is 96-d; 24 = 1/4 of the dims (the MRL target)


def train_pair(root: Path, stage_steps: tuple[int, int], size: str = "small", seed: int = 0,
               names: tuple[str, ...] = ("matryoshka", "plain")) -> dict[str, Path]:
    """Model folders {"matryoshka": ..., "plain": ...} trained on the synthetic benchmark under `root`
    (the data is generated once in root/data; a finished training is reused; `names`: which of the two)."""
    from uniembed.data.synth.generate import generate
    from uniembed.demo import default_recipe_path, write_mixtures
    from uniembed.training.recipe import load_recipe
    from uniembed.training.trainer import Trainer

    data_dir = root / "data"
    if not (data_dir / "metadata.json").exists():
        generate(data_dir, size=size, seed=seed, progress=False)
    mixtures = write_mixtures(data_dir, root / "mixtures")
    base = [f"stages.0.data={mixtures['stage1']}", f"stages.1.data={mixtures['stage2']}", f"seed={seed}",
            f"stages.0.max_steps={stage_steps[0]}", f"stages.1.max_steps={stage_steps[1]}"]
    mrl = [f"stages.*.loss.matryoshka={{dims: {list(MATRYOSHKA_DIMS)}}}"]
    models = {}
    for name, extra in (("matryoshka", mrl), ("plain", [])):
        if name not in names:
            continue
        done = root / f"{name}.model"  # the finished model's folder, written when its training ends
        if done.exists():
            models[name] = Path(done.read_text().strip())
            continue
        start = time.perf_counter()
        train_dir = root / f"train-{name}"
        models[name] = Trainer(load_recipe(default_recipe_path(), base + extra), train_dir,
                               resume=train_dir.exists()).run()
        done.write_text(f"{models[name]}\n")
        print(f"trained {name} in {time.perf_counter() - start:.0f} s -> {models[name]}", flush=True)
    return models


WIDTHS = (48, 24)  # besides the full 96
PRECISIONS = ("float32", "float16", "int8", "binary")
RESCORE = 4


def score_grid(model_dir: Path, suite: str, data: Path, out: Path, datasets: list[str] | None = None) -> dict:
    """One `evaluate` of the model: every width x precision (and binary/int8 with rescore 4) from one encode.
    Returns {"full": overall, "rows": [{width, precision, overall, kept}], "seconds": ...}."""
    from uniembed.eval.evaluate import evaluate
    from uniembed.eval.report import dimension_rows, precision_rows
    from uniembed.models.embedder import Embedder

    start = time.perf_counter()
    model = Embedder.from_pretrained(model_dir)
    payload = evaluate(model, suite, data, out, datasets=datasets, progress=False, batch_size=32,
                       dimensions=WIDTHS, precisions=PRECISIONS, rescore=RESCORE).payload
    rows = [{"width": str(width), "precision": "float32", "overall": overall, "kept": kept}
            for width, overall, kept in dimension_rows(payload)]
    rows += [{"width": width, "precision": name, "overall": overall, "kept": kept}
             for width, name, overall, kept in precision_rows(payload) if name != "float32"]
    order = {"full": 0, **{str(w): i + 1 for i, w in enumerate(WIDTHS)}}
    rows.sort(key=lambda r: order[r["width"]])  # stable: float32 first within a width
    return {"full": payload["overall"], "scores": payload["scores"], "rows": rows,
            "seconds": round(time.perf_counter() - start, 1)}


def digits_data(root: Path, count: int) -> Path:
    """scikit-learn's first `count` digits as an MMEB-V1-layout folder (`--datasets Digits`) under root/digits."""
    from uniembed.data.synth.digits import digit_images, write_digits_mmeb

    folder = root / "digits"
    if not (folder / "Digits").exists():
        write_digits_mmeb(folder, "Digits", "eval_images", *digit_images(count))
    return folder


def trained_grids(root: Path, stage_steps: tuple[int, int], digits: int = 500,
                  datasets: list[str] | None = None) -> dict:
    """Train both models (or reuse them) and score each on the synthetic suite and on the digits."""
    models = train_pair(root, stage_steps)
    digits_dir = digits_data(root, digits)
    grids = {}
    for name, model_dir in models.items():
        grids[name] = {"synthetic": score_grid(model_dir, "synthetic", root / "data", root / f"eval-{name}", datasets),
                       "digits": score_grid(model_dir, "mmeb-v1", digits_dir, root / f"digits-{name}", ["Digits"])}
        print(name, {k: (v["full"], v["seconds"]) for k, v in grids[name].items()}, flush=True)
    return grids


def grid_markdown(grids: dict, training: str, note: str = "") -> list[str]:
    """The score-kept tables: one row per width x precision, a column per model and data set."""
    if not grids:
        return []
    columns = [(model, data) for model in grids for data in grids[model]]
    lines = ["", f"## Score kept by trained models: {training}, with and without Matryoshka {list(MATRYOSHKA_DIMS)}",
             "", *([note, ""] if note else []),
             "Overall score (percent) and its share of the same model's full-width float32 overall. synthetic = "
             "the demo's synthetic suite; digits = scikit-learn digits in the MMEB layout (hit@1 over 10 labels).", "",
             "| width | precision | " + " | ".join(f"{m} {d}" for m, d in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    keys = [(r["width"], r["precision"]) for r in grids[columns[0][0]][columns[0][1]]["rows"]]
    for width, precision in keys:
        cells = []
        for model, data in columns:
            row = next(r for r in grids[model][data]["rows"] if (r["width"], r["precision"]) == (width, precision))
            cells.append(f"{row['overall']:.1f} ({row['kept']:.1f}%)" if row["kept"] is not None else "-")
        lines.append(f"| {width} | {precision} | " + " | ".join(cells) + " |")
    return lines
