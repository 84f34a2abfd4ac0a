"""Model profiles: how each published family fed its checkpoints, as data (`profiles/<name>.yaml`).

A profile pins every setting that decides the tokens and pixels a checkpoint sees (prompt layout, vision
markers, instruction joining, positions, resize policy, frame policy, pooling) plus the instructions the
authors' evaluation code uses per benchmark task. Each fact carries its source in a comment beside it.
`Embedder.from_pretrained(dir, profile="vlm2vec-v1")` applies one; checkpoints that identify a known
family (their `uniembed.json`, or the name in `config.json`) get theirs automatically.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, reject_unknown_fields
from .config import EmbeddingConfig


@dataclass(frozen=True)
class TaskInstructions:
    """The instructions the authors' evaluation code puts on one group of benchmark tasks.

    `tasks` are shell-style patterns on task names ("ViDoRe_*"); None on a side leaves that side's own
    instruction (from the data) in place, "" removes it. `layout` holds the prompt-layout options
    (`LAYOUT_OPTIONS`) that differ on these tasks (VLM2Vec's video and document items join media and
    instruction with " " and keep no trailing newline).
    """

    tasks: tuple[str, ...]
    query: str | None = None
    candidate: str | None = None
    source: str = ""
    layout: tuple[tuple[str, Any], ...] = ()

    def matches(self, task_name: str) -> bool:
        return any(fnmatch.fnmatchcase(task_name, pattern) for pattern in self.tasks)


# how a profile's facts were checked against its family's inference code (`Profile.checked`)
CHECKS = {
    "run": "the authors' inference code was run against uniembed on the same tiny checkpoint and inputs",
    "read": "the authors' code was read, line by line, not run against uniembed",
    "none": "no inference code released for this backbone: the settings are inferred",
}


@dataclass(frozen=True)
class Profile:
    """One published family's inference settings (see the module docstring).

    `checked` says how its facts were held against the authors' code (`CHECKS`). Where the authors' code
    embeds one way in training and another in evaluation, `follows` names the one the settings reproduce and
    `variants` offers the others as settings on top (`get_profile("u-marvel:training")`).
    """

    name: str
    family: str
    backbones: tuple[str, ...]  # the model_types (config.json) it applies to
    description: str
    inference_code: str  # where the authors' inference code is, or why there is none
    embedding: dict[str, Any]  # EmbeddingConfig fields
    detect: tuple[str, ...] = ()  # case-insensitive substrings of a checkpoint's name that identify the family
    checkpoints: tuple[str, ...] = ()
    tasks: tuple[TaskInstructions, ...] = ()
    published: dict[str, Any] = field(default_factory=dict)
    benchmark_settings: str = ""
    sources: tuple[str, ...] = ()
    checked: str = "read"
    check_note: str = ""  # what was compared, and what was not
    follows: str = ""
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def variant(self, name: str) -> "Profile":
        """This profile with variant `name`'s settings applied, named "<profile>:<variant>"."""
        if name not in self.variants:
            raise ConfigError(f"profile {self.name!r} has no variant {name!r}; known: {sorted(self.variants)}"
                              if self.variants else f"profile {self.name!r} has no variants")
        embedding = dict(self.embedding, **self.variants[name])
        return dataclasses.replace(self, name=f"{self.name}:{name}", embedding=embedding, follows=name,
                                   variants={})

    def config(self, base: EmbeddingConfig | None = None, **overrides: Any) -> EmbeddingConfig:
        """`base` (default: the library defaults) with this profile's settings, then `overrides`, applied."""
        settings = dict(self.embedding, profile=self.name)
        settings.update(overrides)
        return (base or EmbeddingConfig()).replace(**settings)

    def task_instructions(self, task_name: str) -> tuple[str | None, str | None] | None:
        """(query instruction, candidate instruction) the authors' evaluation code uses on `task_name`,
        or None when the profile says nothing about that task (its data's own instructions stand)."""
        for entry in self.tasks:
            if entry.matches(task_name):
                return entry.query, entry.candidate
        return None

    def task_layout(self, task_name: str) -> dict[str, Any]:
        """Prompt-layout options the authors' code uses on `task_name` where they differ from the profile's."""
        for entry in self.tasks:
            if entry.matches(task_name):
                return dict(entry.layout)
        return {}

    def applies_to(self, model_type: str) -> bool:
        return not self.backbones or model_type in self.backbones

    def summary(self) -> dict[str, Any]:
        """What `uniembed profiles` and `uniembed info` show."""
        return {"name": self.name, "family": self.family, "backbones": list(self.backbones),
                "description": self.description, "inference_code": self.inference_code,
                "checkpoints": list(self.checkpoints), "published": self.published,
                "benchmark_settings": self.benchmark_settings, "sources": list(self.sources),
                "embedding": self.embedding, "task_groups": len(self.tasks), "checked": self.checked,
                "checked_means": CHECKS[self.checked], "check_note": self.check_note, "follows": self.follows, "variants": self.variants}


_PROFILE_KEYS = set(Profile.__dataclass_fields__)
_TASK_KEYS = {"tasks", "query", "candidate", "source", "layout"}
LAYOUT_OPTIONS = ("media_separator", "instruction_separator", "instruction_suffix", "vision_markers", "images_first")


def _parse(data: dict[str, Any], where: str) -> Profile:
    if not isinstance(data, dict):
        raise ConfigError(f"profile {where} must be a mapping")
    unknown = sorted(set(data) - _PROFILE_KEYS)
    if unknown:
        raise ConfigError(f"unknown profile field(s) {unknown} in {where}; known: {sorted(_PROFILE_KEYS)}")
    embedding = dict(data.get("embedding") or {})
    reject_unknown_fields(EmbeddingConfig, embedding, "embedding option(s)", where)
    EmbeddingConfig().replace(**embedding)  # validate now, not at first use
    variants = dict(data.get("variants") or {})
    for name, settings in variants.items():
        reject_unknown_fields(EmbeddingConfig, settings, f"embedding option(s) of variant {name!r}", where)
        EmbeddingConfig().replace(**dict(embedding, **settings))
    if data.get("checked", "read") not in CHECKS:
        raise ConfigError(f"checked={data.get('checked')!r} in {where} is not one of {sorted(CHECKS)}")
    tasks = []
    for entry in data.get("tasks") or []:
        extra = sorted(set(entry) - _TASK_KEYS)
        if extra:
            raise ConfigError(f"unknown task-instruction field(s) {extra} in {where}; known: {sorted(_TASK_KEYS)}")
        patterns = entry["tasks"]
        layout = dict(entry.get("layout") or {})
        if set(layout) - set(LAYOUT_OPTIONS):
            raise ConfigError(f"task layout in {where} may set only {LAYOUT_OPTIONS}, got {sorted(layout)}")
        tasks.append(TaskInstructions(tuple([patterns] if isinstance(patterns, str) else patterns),
                                      entry.get("query"), entry.get("candidate"), entry.get("source", ""),
                                      tuple(sorted(layout.items()))))
    try:
        return Profile(
            name=str(data["name"]), family=str(data["family"]), backbones=tuple(data.get("backbones") or ()),
            description=str(data.get("description", "")).strip(), inference_code=str(data["inference_code"]).strip(),
            embedding=embedding, detect=tuple(data.get("detect") or ()), checkpoints=tuple(data.get("checkpoints") or ()),
            tasks=tuple(tasks), published=dict(data.get("published") or {}),
            benchmark_settings=str(data.get("benchmark_settings", "")).strip(), sources=tuple(data.get("sources") or ()),
            checked=str(data.get("checked", "read")), check_note=str(data.get("check_note", "")).strip(), follows=str(data.get("follows", "")), variants=variants)
    except KeyError as exc:
        raise ConfigError(f"profile {where} lacks the required field {exc}") from None


@lru_cache(maxsize=1)
def _builtin() -> dict[str, Profile]:
    folder = resources.files("uniembed.models") / "profiles"
    found: dict[str, Profile] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            profile = _parse(yaml.safe_load(entry.read_text()), f"profiles/{entry.name}")
            found[profile.name] = profile
    return found


def available_profiles() -> list[Profile]:
    """Every shipped profile, by name."""
    return [profile for _, profile in sorted(_builtin().items())]


def get_profile(name: str | Profile) -> Profile:
    """A shipped profile by name ("u-marvel", or "u-marvel:training" for one of its variants), or a `.yaml`
    file written in the same format."""
    if isinstance(name, Profile):
        return name
    profiles = _builtin()
    if name in profiles:
        return profiles[name]
    base, _, variant = name.partition(":")
    if variant and base in profiles:
        return profiles[base].variant(variant)
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return _parse(yaml.safe_load(Path(name).read_text()), name)
    raise ConfigError(f"unknown profile {name!r}; known: {sorted(profiles)} (or a path to a profile .yaml)")


def detect_profile(directory: str | Path, model_type: str) -> Profile | None:
    """The profile a checkpoint identifies: its name (`_name_or_path` in config.json, or the directory's
    name) containing a profile's `detect` string, for a profile of this backbone."""
    directory = Path(directory)
    names = [directory.name]
    config_file = directory / "config.json"
    if config_file.exists():
        try:
            names.append(str(json.loads(config_file.read_text()).get("_name_or_path", "")))
        except (json.JSONDecodeError, OSError):
            pass
    text = " ".join(names).lower()
    for profile in available_profiles():
        if profile.applies_to(model_type) and any(key.lower() in text for key in profile.detect):
            return profile
    return None
