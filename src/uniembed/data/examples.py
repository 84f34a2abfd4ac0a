"""The two records every reader produces: a training example and an evaluation task."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..inputs import Item


@dataclass
class TrainingExample:
    """One training row, whatever format it came from.

    `positives[0]` is the target used in the contrastive loss; `negatives` are mined or given hard
    negatives (appended to the in-batch candidates). `target_modality` is the modality bitmask of the
    positive (the modality mask of UNITE compares it with each candidate's modality).
    Ids are kept when the format has them (corpus-plus-ids, M-BEIR), so mining can rewrite id lists.
    """

    query: Item
    positives: list[Item]
    negatives: list[Item] = field(default_factory=list)
    source: str = ""
    target_modality: int = 0
    query_id: str | None = None
    positive_ids: list[str] | None = None
    negative_ids: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.target_modality and self.positives:
            self.target_modality = self.positives[0].modality


@dataclass
class EvalTask:
    """One evaluation data set, ready to score.

    `candidates` is the task's de-duplicated candidate pool. Ranking is either local (`candidate_lists`
    set: each query ranks only its own list, given as indices into `candidates` in file order, gold
    first for MMEB) or global (`candidate_lists` None: each query ranks the whole pool).
    `qrels[i]` maps a position in what query i ranks (its local list, or the pool) to a relevance > 0.
    `metric` is the headline metric name as returned by `ranking_metrics` (e.g. "hit@1", "ndcg@5").
    `video_sampling` is the frame-sampling policy the encoder applies to this task's videos.
    """

    name: str
    queries: list[Item]
    candidates: list[Item]
    qrels: list[dict[int, float]]
    metric: str = "hit@1"
    candidate_lists: list[list[int]] | None = None
    meta_task: str = ""
    modality_group: str = "image"
    in_distribution: bool | None = None
    chance: float | None = None
    query_ids: list[str] | None = None
    candidate_ids: list[str] | None = None
    extra_metrics: tuple[str, ...] = ()
    # The `FramePolicy` fields this benchmark fixes for the frames of its video items (MMEB-V2: {"num_frames":
    # 8, "max_source_frames": 64, "rounding": "floor"}); the others stay the encoder's. None = the encoder's own
    # policy. `eval.profiles.profile_groups` applies it (a model profile's pinned frame fields win).
    video_sampling: dict[str, Any] | None = None

    @property
    def is_local(self) -> bool:
        return self.candidate_lists is not None

    def __post_init__(self) -> None:
        if len(self.qrels) != len(self.queries):
            raise ValueError(f"task {self.name}: {len(self.qrels)} qrels for {len(self.queries)} queries")
        if self.candidate_lists is not None and len(self.candidate_lists) != len(self.queries):
            raise ValueError(f"task {self.name}: {len(self.candidate_lists)} candidate lists for {len(self.queries)} queries")
