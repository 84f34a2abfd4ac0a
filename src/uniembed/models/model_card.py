"""The model card (`README.md`) of an exported model, written from what training recorded, not from a template
of claims: `uniembed.json` (profile, embedding options), `recipe.yaml` (base model, data sources, losses),
`training_state.json` (steps) and any `eval*.json` report found beside the weights."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _load(path: Path) -> Any:
    if not path.exists():
        return None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(path.read_text())
    return json.loads(path.read_text())


def _rows(source: Any) -> str:
    """One data source as '`path` (N rows)' where its file can be counted."""
    path = source.get("path") if isinstance(source, dict) else source
    if not isinstance(path, str):
        return f"`{source}`"
    file = Path(path)
    if file.is_file() and file.suffix == ".jsonl":
        with file.open("rb") as handle:
            return f"`{path}` ({sum(1 for line in handle if line.strip())} rows)"
    return f"`{path}`"


def _training_lines(directory: Path) -> list[str]:
    recipe = _load(directory / "recipe.yaml")
    state = _load(directory / "training_state.json")
    if not recipe and not state:
        return ["No training records were found beside the weights (`recipe.yaml`, `training_state.json`)."]
    lines = []
    if recipe:
        lines.append(f"- Recipe: `{recipe.get('name', '?')}` (base model `{recipe.get('model', '?')}`)")
        for stage in recipe.get("stages") or []:
            data = stage.get("data")
            sources = data if isinstance(data, list) else ([data] if data else [])
            lines.append(f"- Stage `{stage.get('name')}`: loss `{json.dumps(stage.get('loss'))}`, "
                         f"max_steps {stage.get('max_steps')}, data: "
                         + (", ".join(_rows(s) for s in sources) or "none recorded"))
    if state:
        lines.append(f"- Trained steps: {state.get('steps')} (stage `{state.get('stage')}`)")
    return lines


def _eval_lines(directory: Path) -> list[str]:
    lines = []
    for report in sorted(directory.glob("eval*.json")):
        payload = _load(report)
        scores = payload.get("scores", payload) if isinstance(payload, dict) else payload
        lines.append(f"- `{report.name}`: {json.dumps(scores, sort_keys=True)[:600]}")
    return lines or ["No evaluation results were saved with this model."]


def model_card(directory: Path, embedder: Any, problems: list[str]) -> str:
    """The card's Markdown for the model saved in `directory`."""
    config = embedder.config
    hf_config = embedder.backbone.hf_model.config
    architecture = (getattr(hf_config, "architectures", None) or [type(embedder.backbone.hf_model).__name__])[0]
    lines = [
        "---", "library_name: sentence-transformers", "pipeline_tag: feature-extraction",
        "tags: [uniembed, multimodal-embedding, sentence-transformers]", "---", "",
        "# Multimodal embedder exported by uniembed", "",
        f"- Architecture: `{architecture}` (`model_type: {hf_config.model_type}`), source `{embedder.source}`",
        f"- Profile: `{config.profile or 'none (library defaults)'}`; pooling `{config.pooling}`, "
        f"normalize {config.normalize}, dimension {embedder.dimension}",
        f"- Modalities: {', '.join(embedder.modalities)}; pixels per image {config.min_pixels}-{config.max_pixels}",
        "", "## Training", "", *_training_lines(directory), "", "## Evaluation", "", *_eval_lines(directory), "",
        "## Use", "", "```python", "from sentence_transformers import SentenceTransformer", "",
        "model = SentenceTransformer(\"path/to/this/folder\")",
        "vectors = model.encode([\"a red circle\", {\"image\": \"scene.png\", \"text\": \"a red circle\"}])",
        "```", "",
        "With vLLM: `vllm serve path/to/this/folder --runner pooling --chat-template path/to/this/folder/chat_template.jinja`",
        "and send `messages` (system = instruction, user = text / image_url / video_url parts) to `/v1/embeddings`.",
    ]
    if config.multi_vector_dim is not None:  # a late-interaction model: MultiVectorEncoder, MaxSim; no vLLM pooling
        start = lines.index("## Use")
        lines[start:] = [
            "## Use", "", f"A multi-vector (late-interaction) model: {config.multi_vector_dim}-d token vectors "
            "scored with MaxSim.", "", "```python", "from sentence_transformers import MultiVectorEncoder", "",
            "model = MultiVectorEncoder(\"path/to/this/folder\")",
            "queries = model.encode_query([\"a red circle\"])",
            "pages = model.encode_document([{\"image\": \"page.png\"}])",
            "scores = model.similarity(queries, pages)", "```"]
    if problems:
        lines += ["", "## Caveats", "",
                  "sentence-transformers and vLLM do not reproduce uniembed's embedding for these options; "
                  "embed with uniembed:", *[f"- {problem}" for problem in problems]]
    return "\n".join(lines) + "\n"
