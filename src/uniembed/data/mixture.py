"""Training mixtures: a YAML list of sources, each read into named `TrainingExample`s with a weight.

    skip_bad_rows: false            # default for every source
    sources:
      - name: imagenet              # unique; batches are drawn from one source at a time
        format: mmeb-train          # mmeb-train | mbeir | corpus-ids | jsonl  (underscores work too;
                                    # mmeb_train_video and jsonl_triplets are accepted as aliases)
        path: MMEB-train/ImageNet_1K/original-00000-of-00001.parquet
        image_root: MMEB-train/images
        video_root: null            # mmeb-train video subsets: root of the frame folders (default image_root)
        weight: 2.0                 # relative share of batches (default: the source's size)
        query_instruction: "Represent the given image for classification"   # overrides ("" removes)
        target_instruction: null
        skip_bad_rows: true
        max_rows: 1000              # optional cap
      - {name: cirr, format: mbeir, path: query/train/mbeir_cirr_task7_train.jsonl,
         pool: cand_pool/local/mbeir_cirr_task7_cand_pool.jsonl, instructions: instructions.tsv, seed: 0}
      - {name: docs, format: corpus-ids, path: queries.jsonl, corpus: corpus.jsonl}

`sources` may also be a mapping of name -> options. Relative paths in a mixture file resolve against that
file's folder (not the working directory); an inline mapping's against `base_dir`. Errors about a missing
file show the path looked for and the folder it was relative to.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from ..errors import ConfigError, InputError
from ..inputs import Item
from .examples import TrainingExample
from .readers import ReadReport, read_corpus_ids, read_jsonl_examples, read_mbeir_train, read_mmeb_train

logger = logging.getLogger("uniembed.data")

_COMMON_KEYS = {"name", "format", "path", "weight", "query_instruction", "target_instruction", "skip_bad_rows",
                "max_rows", "image_root", "media_root"}
_FORMAT_KEYS = {
    "mmeb-train": {"video_root"},
    "jsonl": set(),
    "corpus-ids": {"corpus"},
    "mbeir": {"pool", "instructions", "dataset", "seed", "inline_instruction"},
}
# the layout names written in the synthetic benchmark's metadata.json
_FORMAT_ALIASES = {"mmeb-train-video": "mmeb-train", "jsonl-triplets": "jsonl", "corpus-plus-ids": "corpus-ids"}
_PATH_KEYS = ("path", "image_root", "media_root", "video_root", "corpus", "pool", "instructions")


@dataclass
class TrainingSource:
    """One named source of a mixture: its examples, weight, and what reading it skipped."""

    name: str
    examples: list[TrainingExample]
    weight: float
    report: ReadReport = field(default_factory=ReadReport)
    options: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class Mixture:
    sources: dict[str, TrainingSource]

    @property
    def weights(self) -> dict[str, float]:
        return {name: source.weight for name, source in self.sources.items()}

    def summary(self) -> str:
        total = sum(s.weight for s in self.sources.values()) or 1.0
        return "\n".join(f"{name}: {len(s)} examples, weight {s.weight:g} ({100 * s.weight / total:.1f}%), "
                         f"{s.report.skipped} bad rows skipped" for name, s in self.sources.items())


def load_mixture(spec: str | os.PathLike | Mapping[str, Any], *, base_dir: str | os.PathLike | None = None,
                 skip_bad_rows: bool | None = None, max_rows: int | None = None) -> Mixture:
    """Read every source of a mixture (a YAML file or an already-parsed mapping).

    `base_dir` (default: the working directory) is what a relative `spec` path, or the relative paths of a
    mapping, resolve against; the sources of a mixture file resolve against the file's own folder.
    `skip_bad_rows` / `max_rows`, when given, override the file (the `--skip-bad-rows` flag lands here).
    """
    base = Path(os.path.abspath(base_dir)) if base_dir is not None else Path.cwd()
    if isinstance(spec, (str, os.PathLike)):
        path = base / spec  # an absolute `spec` stays as it is
        if not path.is_file():
            relative = "" if Path(spec).is_absolute() else f", relative to '{base}'"
            raise ConfigError(f"mixture file '{spec}' not found (looked for '{path}'{relative})")
        with open(path, encoding="utf-8") as handle:
            try:
                spec = yaml.safe_load(handle)
            except yaml.YAMLError as exc:
                raise ConfigError(f"mixture file '{path}' is not valid YAML: {exc}") from exc
        base = path.parent
    if not isinstance(spec, Mapping) or "sources" not in spec:
        raise ConfigError("a mixture is a mapping with a 'sources' list (or mapping of name -> options)")
    unknown = set(spec) - {"sources", "skip_bad_rows"}
    if unknown:
        raise ConfigError(f"unknown mixture key(s) {sorted(unknown)}; use 'sources' and 'skip_bad_rows'")
    entries = _source_entries(spec["sources"])
    default_skip = bool(spec.get("skip_bad_rows", False))
    sources: dict[str, TrainingSource] = {}
    for options in entries:
        written = options
        options = _resolve_paths(options, base)
        if skip_bad_rows is not None:
            options["skip_bad_rows"] = skip_bad_rows
        options.setdefault("skip_bad_rows", default_skip)
        if max_rows is not None:
            options["max_rows"] = min(max_rows, options.get("max_rows") or max_rows)
        try:
            source = load_source(options)
        except InputError as exc:
            raise _name_base(exc, written, options, base) from None
        if source.name in sources:
            raise ConfigError(f"two mixture sources are named '{source.name}'; give each a unique name")
        sources[source.name] = source
    if not sources:
        raise ConfigError("the mixture lists no sources")
    return Mixture(sources)


def _source_entries(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, Mapping):
        entries = []
        for name, options in value.items():
            if not isinstance(options, Mapping):
                raise ConfigError(f"mixture source '{name}' must be a mapping of options")
            entries.append({"name": str(name), **options})
        return entries
    if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        return [dict(v) for v in value]
    raise ConfigError("mixture 'sources' must be a list of mappings or a mapping of name -> options")


def _resolve_paths(options: Mapping[str, Any], base: Path) -> dict[str, Any]:
    resolved = dict(options)
    for key in _PATH_KEYS:
        value = resolved.get(key)
        if isinstance(value, (str, os.PathLike)) and value and not Path(value).is_absolute():
            resolved[key] = str(base / value)
    return resolved


def _name_base(exc: InputError, written: Mapping[str, Any], resolved: Mapping[str, Any], base: Path) -> InputError:
    """`exc`, plus the option and the folder it resolved against when one of the source's own relative paths is
    missing."""
    for key in _PATH_KEYS:
        value = written.get(key)
        if isinstance(value, (str, os.PathLike)) and value and not Path(value).is_absolute() \
                and exc.row is None and exc.path == str(resolved[key]) and not os.path.exists(exc.path):
            note = f"'{key}: {value}' resolves against the mixture's folder '{base}'"
            return InputError(exc.problem, position=exc.position, path=exc.path, row=exc.row,
                              fix=f"{exc.fix}; {note}" if exc.fix else note)
    return exc


def load_source(options: Mapping[str, Any]) -> TrainingSource:
    """Read one mixture source from its options (see the module docstring)."""
    name = options.get("name")
    fmt = options.get("format")
    fmt = _FORMAT_ALIASES.get(str(fmt).replace("_", "-"), str(fmt).replace("_", "-")) if fmt else fmt
    label = f"mixture source '{name}'" if name else "a mixture source"
    if fmt not in _FORMAT_KEYS:
        raise ConfigError(f"{label}: format must be one of {sorted(_FORMAT_KEYS)}, got {fmt!r}")
    unknown = set(options) - _COMMON_KEYS - _FORMAT_KEYS[fmt]
    if unknown:
        raise ConfigError(f"{label}: unknown option(s) {sorted(unknown)} for format '{fmt}'")
    if not options.get("path"):
        raise ConfigError(f"{label}: 'path' is required")
    weight = options.get("weight")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0):
        raise ConfigError(f"{label}: weight must be a positive number, got {weight!r}")
    report = ReadReport()
    examples = _READERS[fmt](options, report)
    name = str(name or (examples[0].source if examples else Path(options["path"]).stem))
    examples = [_override(example, name, options) for example in examples]
    if not examples:
        raise ConfigError(f"{label}: no usable examples in '{options['path']}' ({report.summary()})")
    if weight is None:
        weight = float(len(examples))  # proportional to size
    if report.skipped:
        logger.warning("%s: %s", label, report.summary())
    return TrainingSource(name, examples, float(weight), report, dict(options))


def _media_root(options: Mapping[str, Any]) -> Any:
    return options.get("image_root") or options.get("media_root")


def _common(options: Mapping[str, Any], report: ReadReport) -> dict[str, Any]:
    return {"skip_bad_rows": bool(options.get("skip_bad_rows")), "report": report, "max_rows": options.get("max_rows"),
            "source": options.get("name")}


def _read_mmeb(options: Mapping[str, Any], report: ReadReport) -> list[TrainingExample]:
    return read_mmeb_train(options["path"], _media_root(options), video_root=options.get("video_root"),
                           **_common(options, report))


def _read_jsonl(options: Mapping[str, Any], report: ReadReport) -> list[TrainingExample]:
    return read_jsonl_examples(options["path"], _media_root(options), **_common(options, report))


def _read_corpus_ids(options: Mapping[str, Any], report: ReadReport) -> list[TrainingExample]:
    if not options.get("corpus"):
        raise ConfigError(f"mixture source '{options.get('name')}': format corpus-ids needs 'corpus'")
    return read_corpus_ids(options["path"], options["corpus"], _media_root(options), **_common(options, report))


def _read_mbeir(options: Mapping[str, Any], report: ReadReport) -> list[TrainingExample]:
    if not options.get("pool"):
        raise ConfigError(f"mixture source '{options.get('name')}': format mbeir needs 'pool'")
    return read_mbeir_train(options["path"], options["pool"], media_root=_media_root(options),
                            instructions=options.get("instructions"), dataset=options.get("dataset"),
                            seed=int(options.get("seed", 0)), inline_instruction=bool(options.get("inline_instruction")),
                            **_common(options, report))


_READERS: dict[str, Callable[[Mapping[str, Any], ReadReport], list[TrainingExample]]] = {
    "mmeb-train": _read_mmeb, "jsonl": _read_jsonl, "corpus-ids": _read_corpus_ids, "mbeir": _read_mbeir,
}


def _with_instruction(item: Item, instruction: str | None) -> Item:
    return dataclasses.replace(item, instruction=instruction or None)


def _override(example: TrainingExample, name: str, options: Mapping[str, Any]) -> TrainingExample:
    """The example under the source's name, with its instruction overrides applied."""
    changes: dict[str, Any] = {"source": name}
    if "query_instruction" in options and options["query_instruction"] is not None:
        changes["query"] = _with_instruction(example.query, options["query_instruction"])
    if "target_instruction" in options and options["target_instruction"] is not None:
        target = options["target_instruction"]
        changes["positives"] = [_with_instruction(item, target) for item in example.positives]
        changes["negatives"] = [_with_instruction(item, target) for item in example.negatives]
    return dataclasses.replace(example, **changes)
