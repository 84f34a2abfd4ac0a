"""Every loss kind is an objective: one file per kind, each with its own strict options class (base.py).

`OBJECTIVES` is the one place that maps `loss.kind` to how it trains; the recipe parses `stages[i].loss` with the
class `options_class` names, and the stage runs `objective_for(runner)`.
"""
from __future__ import annotations

from typing import Any, Mapping

from ...errors import ConfigError
from .base import EmbeddingLossOptions, LossOptions, MatryoshkaSpec, Objective, StageHost, accumulate
from .contrastive import ContrastiveObjective, ContrastiveOptions
from .late_interaction import LateInteractionObjective, LateInteractionOptions
from .listwise import ListwiseObjective, ListwiseOptions, teacher_scores, write_npz
from .relational import RelationalObjective, RelationalOptions
from .reranker import RerankerObjective, RerankerOptions

OBJECTIVES: dict[str, type[Objective]] = {
    "contrastive": ContrastiveObjective,
    "relational": RelationalObjective,
    "reranker": RerankerObjective,
    "listwise": ListwiseObjective,
    "late_interaction": LateInteractionObjective,
}
LOSS_KINDS = tuple(OBJECTIVES)

__all__ = ["LOSS_KINDS", "OBJECTIVES", "ContrastiveObjective", "ContrastiveOptions", "EmbeddingLossOptions",
           "LateInteractionObjective", "LateInteractionOptions",
           "ListwiseObjective", "ListwiseOptions", "LossOptions", "MatryoshkaSpec", "Objective", "RelationalObjective", "RelationalOptions",
           "RerankerObjective", "RerankerOptions", "StageHost", "accumulate", "objective_for", "options_class",
           "previous_embedding_stage", "teacher_scores", "write_npz"]


def options_class(raw: Any, where: str) -> type[LossOptions]:
    """The options class of the kind a raw `stages[i].loss` mapping names (contrastive by default); an unknown
    kind raises ConfigError listing the known ones."""
    kind = raw.get("kind", "contrastive") if isinstance(raw, Mapping) else "contrastive"
    if kind not in OBJECTIVES:
        raise ConfigError(f"{where}: loss.kind {kind!r} is not one of {LOSS_KINDS}")
    return OBJECTIVES[kind].options_class


def objective_for(runner: StageHost) -> Objective:
    """The objective of the runner's loss kind."""
    return OBJECTIVES[runner.stage.loss.kind](runner)


def previous_embedding_stage(recipe: Any, index: int) -> int | None:
    """The latest stage before `index` whose output is an embedding model (re-ranker stages are skipped)."""
    for earlier in range(index - 1, -1, -1):
        if recipe.stages[earlier].loss.makes_embedder:
            return earlier
    return None
