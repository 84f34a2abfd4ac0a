"""Write what an evaluation found: results.json, report.md (beside published figures) and report.html.

report.html is self-contained: its charts are HTML bars (matplotlib figures cost most of a warm re-run's time)
and thumbnails are embedded JPEGs, so the file can be mailed or opened offline.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from ..data.examples import EvalTask
from ..frames import FramePolicy
from ..inputs import Item
from ..encoding import EncodeStats
from .runner import TaskResult

THUMBNAIL = 112


def results_payload(suite: str, model: str, results: Sequence[TaskResult], groups: dict[str, float], overall: float,
                    stats: EncodeStats | None = None, options: dict | None = None) -> dict:
    """The results.json structure: suite, model, scores, metrics, groups, overall, chance (when known)."""
    payload = {
        "suite": suite,
        "model": model,
        "scores": {r.name: _round(r.score) for r in results},
        "metrics": {r.name: {k: _round(v) for k, v in r.metrics.items()} for r in results},
        "groups": {k: _round(v) for k, v in groups.items()},
        "overall": _round(overall),
    }
    chance = {r.name: _round(r.chance) for r in results if r.chance is not None}
    if chance:
        payload["chance"] = chance
    payload["main_metric"] = {r.name: r.metric for r in results}
    payload["task_groups"] = {r.name: {"meta_task": r.meta_task, "modality_group": r.modality_group} for r in results}
    payload["num_queries"] = {r.name: r.num_queries for r in results}
    if options:
        payload["options"] = options
    if stats is not None:
        payload["encoding"] = asdict(stats)
    return payload


def dimension_scores(definition: Any, results: Sequence[TaskResult]) -> dict:
    """One Matryoshka width's entry of results.json `by_dimension`: scores, groups and overall, as at full width."""
    return {"scores": {r.name: _round(r.score) for r in results},
            "groups": {k: _round(v) for k, v in definition.summarize(results).items()},
            "overall": _round(definition.overall(results))}


def add_variant_scores(payload: dict, definition: Any, by_dimension: dict, by_precision: dict) -> None:
    """Put the other widths and precisions into results.json. Shape (each entry as `dimension_scores`):
    `by_dimension: {"64": {scores, groups, overall, by_precision?}}` for the widths; `by_precision: {"int8": {...},
    "binary+rescore4": {...}}` at full width; a width x precision grid nests its cells in each width's entry:
    `by_dimension["64"]["by_precision"]["int8"]`."""
    if by_dimension:
        payload["by_dimension"] = {str(width): dimension_scores(definition, results)
                                   for width, results in by_dimension.items()}
    for width, entries in by_precision.items():
        target = payload if width is None else payload["by_dimension"][str(width)]
        target["by_precision"] = {name: dimension_scores(definition, results) for name, results in entries.items()}


def precision_rows(payload: dict) -> list[tuple[str, str, float | None, float | None]]:
    """(width, precision, overall, percent of the full-width float overall) for every `by_precision` entry, full
    width first, then each width of `by_dimension` that has them."""
    full = payload["overall"]
    widths = [("full", payload)] + sorted(payload.get("by_dimension", {}).items(), key=lambda kv: -int(kv[0]))
    return [(width, name, entry["overall"],
             100.0 * entry["overall"] / full if full and entry["overall"] is not None else None)
            for width, holder in widths for name, entry in holder.get("by_precision", {}).items()]


def dimension_rows(payload: dict) -> list[tuple[str, float | None, float | None]]:
    """(width, overall, percent of the full width's overall) per width of `by_dimension`, full width first."""
    full = payload["overall"]
    rows = [("full", full, 100.0 if full else None)]
    for width, entry in sorted(payload.get("by_dimension", {}).items(), key=lambda kv: -int(kv[0])):
        overall = entry["overall"]
        rows.append((width, overall, 100.0 * overall / full if full and overall is not None else None))
    return rows


def write_results_json(path: str | os.PathLike, payload: dict) -> None:
    Path(path).write_text(json.dumps(payload, indent=2, allow_nan=False, default=_nan_safe) + "\n")


def markdown_report(payload: dict, published: Sequence[tuple[str, dict[str, float]]] = ()) -> str:
    """Per-task table (score, main metric, chance) and a summary table with published rows beside ours."""
    lines = [f"# {payload['suite']} — {payload['model']}", "",
             f"Overall: **{_fmt(payload['overall'])}** (plain mean of {len(payload['scores'])} task scores, percent)", ""]
    published_tasks = sorted({c for _, values in published for c in values if c in payload["scores"]})
    summary_columns = ["overall", *payload["groups"], *published_tasks]
    lines += ["## Summary", "", "| model | " + " | ".join(summary_columns) + " |",
              "|---|" + "---|" * len(summary_columns)]
    ours = {"overall": payload["overall"], **payload["groups"], **payload["scores"]}
    lines.append(f"| **{payload['model']} (this run)** | " + " | ".join(_fmt(ours.get(c)) for c in summary_columns) + " |")
    for model, values in published:
        lines.append(f"| {model} (published) | " + " | ".join(_fmt(values.get(c)) for c in summary_columns) + " |")
    lines += leaderboard_lines(payload)
    lines += ["", "## Tasks", "", "| modality | meta-task | task | main metric | score | chance |",
              "|---|---|---|---|---|---|"]
    chance = payload.get("chance", {})
    info = payload.get("task_groups", {})
    for name, score in payload["scores"].items():
        where = info.get(name, {})
        lines.append(f"| {where.get('modality_group', '')} | {where.get('meta_task', '')} | {name} | "
                     f"{payload['main_metric'][name]} | {_fmt(score)} | {_fmt(chance.get(name))} |")
    if payload.get("by_dimension"):
        lines += ["", "## By dimension", "", "| dimensions | overall | % of full |", "|---|---:|---:|"]
        lines += [f"| {width} | {_fmt(overall)} | {_fmt(kept)} |" for width, overall, kept in dimension_rows(payload)]
    if precision_rows(payload):
        lines += ["", "## By precision", "", "| dimensions | precision | overall | % of full float |",
                  "|---|---|---:|---:|"]
        lines += [f"| {width} | {name} | {_fmt(overall)} | {_fmt(kept)} |"
                  for width, name, overall, kept in precision_rows(payload)]
    encoding = payload.get("encoding")
    if encoding:
        lines += ["", f"Encoded {encoding['encoded']} distinct items ({encoding['from_cache']} more from cache, "
                      f"{encoding['requested']} requested) in {encoding['seconds']:.1f} s."]
    return "\n".join(lines) + "\n"


def leaderboard_lines(payload: dict) -> list[str]:
    """The leaderboard's shape: per modality group its meta-task means and its mean, then the overall
    (MMEB-V2: image CLS/QA/RET/GD, video CLS/QA/RET/MRET, visdoc ViDoRe-V1/V2/VisRAG/OOD; plain means)."""
    info = payload.get("task_groups", {})
    by_group: dict[str, dict[str, list[float]]] = {}
    for name, score in payload["scores"].items():
        where = info.get(name, {})
        metas = by_group.setdefault(where.get("modality_group") or "-", {})
        metas.setdefault(where.get("meta_task") or "-", []).append(score)
    if not by_group:
        return []
    lines = ["", "## Leaderboard view", "", "| modality | meta-task | tasks | score |", "|---|---|---:|---:|"]
    for group, metas in by_group.items():
        for meta, values in metas.items():
            lines.append(f"| {group} | {meta} | {len(values)} | {_fmt(sum(values) / len(values))} |")
        scores = [v for values in metas.values() for v in values]
        lines.append(f"| **{group}** | **all** | {len(scores)} | **{_fmt(sum(scores) / len(scores))}** |")
    lines.append(f"| **overall** | | {len(payload['scores'])} | **{_fmt(payload['overall'])}** |")
    return lines


def html_report(payload: dict, results: Sequence[TaskResult], tasks: Sequence[EvalTask],
                published: Sequence[tuple[str, dict[str, float]]] = ()) -> str:
    """A self-contained HTML page: summary, an overview chart, and per task a metric chart and examples."""
    by_name = {task.name: task for task in tasks}
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(payload['suite'])} — {_e(payload['model'])}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{_e(payload['suite'])} <small>{_e(payload['model'])}</small></h1>",
             f"<p class='overall'>Overall: <b>{_fmt(payload['overall'])}</b></p>",
             _groups_table(payload, published),
             _dimensions_table(payload),
             _precisions_table(payload),
             f"<h2>All tasks</h2>{_overview_bars(results)}"]
    for result in results:
        task = by_name.get(result.name)
        parts.append(f"<section class='task'><h2 id='{_e(result.name)}'>{_e(result.name)} "
                     f"<small>{_e(result.metric)} = {_fmt(result.score)}"
                     + (f", chance {_fmt(result.chance)}" if result.chance is not None else "") + "</small></h2>")
        parts.append(_metric_bars(result))
        if task is not None:
            parts.append(_examples_html(result, task))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(out: str | os.PathLike, payload: dict, results: Sequence[TaskResult], tasks: Sequence[EvalTask],
                  published: Sequence[tuple[str, dict[str, float]]] = ()) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "md": out / "report.md", "html": out / "report.html"}
    write_results_json(paths["json"], payload)
    paths["md"].write_text(markdown_report(payload, published), encoding="utf-8")
    paths["html"].write_text(html_report(payload, results, tasks, published), encoding="utf-8")
    return paths


# ---- charts --------------------------------------------------------------------------------------

def _overview_bars(results: Sequence[TaskResult]) -> str:
    """Every task's main score as an HTML bar (0-100), its chance level as a red tick."""
    rows = []
    for result in results:
        tick = "" if result.chance is None else f"<i style='left:{_clip(result.chance):.1f}%' title='chance'></i>"
        rows.append(f"<tr><td>{_e(result.name)}</td><td class='bar'><span style='width:{_clip(result.score):.1f}%'>"
                    f"</span>{tick}</td><td>{_fmt(result.score)}</td></tr>")
    return f"<table class='metrics overview' aria-label='task scores'>{''.join(rows)}</table>"


def _clip(value: float) -> float:
    return max(0.0, min(float(value), 100.0))


def _metric_bars(result: TaskResult) -> str:
    """The task's cut-off metrics (hit@k, ndcg@k ...) as HTML bars, one row each."""
    rows = "".join(f"<tr><td>{_e(name)}</td><td class='bar'><span style='width:{_clip(value):.1f}%'>"
                   f"</span></td><td>{_fmt(value)}</td></tr>" for name, value in result.metrics.items() if "@" in name)
    return f"<table class='metrics' aria-label='metrics of {_e(result.name)}'>{rows}</table>"


# ---- examples ------------------------------------------------------------------------------------

def _examples_html(result: TaskResult, task: EvalTask) -> str:
    rows = ["<table class='examples'><tr><th>query</th><th>top 5 (gold marked)</th><th>gold</th></tr>"]
    for example in result.examples:
        gold = set(example["gold"])
        top = "".join(_item_card(task.candidates[c], "hit" if c in gold else "") for c in example["top"])
        golds = "".join(_item_card(task.candidates[c], "gold") for c in example["gold"][:3])
        rows.append(f"<tr><td>{_item_card(task.queries[example['query']], 'query')}</td>"
                    f"<td class='top'>{top}</td><td>{golds}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _item_card(item: Item, kind: str) -> str:
    pieces = [f"<div class='card {kind}'>"]
    for uri in _thumbnails(item):
        pieces.append(f"<img src='{uri}' alt='thumbnail'>")
    if item.instruction:
        pieces.append(f"<div class='inst'>{_e(item.instruction[:120])}</div>")
    if item.text:
        pieces.append(f"<div class='text'>{_e(item.text[:240])}</div>")
    pieces.append("</div>")
    return "".join(pieces)


def _thumbnails(item: Item) -> list[str]:
    try:
        images = item.load_images()[:2]
        if item.video is not None:
            images += item.load_video(FramePolicy(num_frames=3)) or []
    except Exception as exc:  # a report must not fail on one unreadable file
        return [_placeholder(str(exc))]
    uris = []
    for image in images:
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        uris.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode())
    return uris


def _placeholder(message: str) -> str:
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{THUMBNAIL}' height='40'><rect width='100%' height='100%' "
           f"fill='#eee'/><text x='4' y='24' font-size='9'>{html.escape(message[:40])}</text></svg>")
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _groups_table(payload: dict, published: Sequence[tuple[str, dict[str, float]]]) -> str:
    """Rows: overall and each group; columns: this run, then each published model."""
    rows_names = ["overall", *payload["groups"]]
    ours = {"overall": payload["overall"], **payload["groups"]}
    head = "<th>group</th><th>this run</th>" + "".join(f"<th>{_e(model)} (published)</th>" for model, _ in published)
    rows = []
    for name in rows_names:
        cells = f"<td>{_fmt(ours.get(name))}</td>" + "".join(f"<td>{_fmt(values.get(name))}</td>" for _, values in published)
        rows.append(f"<tr><td>{_e(name)}</td>{cells}</tr>")
    return f"<table class='groups'><tr>{head}</tr>{''.join(rows)}</table>"


def _dimensions_table(payload: dict) -> str:
    """Matryoshka widths (`--dimensions`): overall score and the share of the full width's it keeps."""
    if not payload.get("by_dimension"):
        return ""
    rows = "".join(f"<tr><td>{_e(width)}</td><td>{_fmt(overall)}</td><td>{_fmt(kept)}</td></tr>"
                   for width, overall, kept in dimension_rows(payload))
    return ("<h2>By dimension</h2><table class='dimensions'><tr><th>dimensions</th><th>overall</th>"
            f"<th>% of full</th></tr>{rows}</table>")


def _precisions_table(payload: dict) -> str:
    """Storage precisions (`--precision`) per width: overall score and the share of full-width float's it keeps."""
    rows = "".join(f"<tr><td>{_e(width)}</td><td>{_e(name)}</td><td>{_fmt(overall)}</td><td>{_fmt(kept)}</td></tr>"
                   for width, name, overall, kept in precision_rows(payload))
    return ("<h2>By precision</h2><table class='dimensions'><tr><th>dimensions</th><th>precision</th><th>overall</th>"
            f"<th>% of full float</th></tr>{rows}</table>") if rows else ""


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.1f}"


def _round(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), 4)


def _nan_safe(value):
    return None


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


_CSS = """
body{font-family:sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;font-size:13px}
.chart{max-width:100%}.metrics td{border:none;padding:1px 6px}.metrics .bar{width:320px}
.metrics .bar{position:relative}.metrics .bar span{display:block;height:10px;background:#55a868}
.overview .bar span{background:#4c72b0}.metrics .bar i{position:absolute;top:0;width:2px;height:14px;background:#c44e52}
.card{display:inline-block;width:130px;margin:2px;padding:3px;border:2px solid #ddd;font-size:11px;overflow:hidden}
.card img{max-width:112px;max-height:112px;display:block}.card.hit{border-color:#2a2}.card.gold{border-color:#e90}
.card.query{border-color:#36c}.inst{color:#888;font-style:italic}
"""
