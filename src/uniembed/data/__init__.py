"""Data: readers for the formats users hold, training mixtures, the batch sampler, and the synthetic benchmark."""
from __future__ import annotations

from .examples import EvalTask, TrainingExample
from .mixture import Mixture, TrainingSource, load_mixture, load_source
from .readers import (
    MMEB_V2_VIDEO_SAMPLING,
    BadRow,
    ReadReport,
    read_corpus_ids,
    read_jsonl_examples,
    read_mbeir,
    read_mbeir_train,
    read_mmeb_train,
    read_mmeb_v1,
    read_mmeb_v1_suite,
    read_mmeb_v2_video,
    read_visdoc,
)
from .sampler import MixtureSampler, SampledBatch

__all__ = [
    "TrainingExample", "EvalTask", "Mixture", "TrainingSource", "load_mixture", "load_source", "MixtureSampler",
    "SampledBatch", "ReadReport", "BadRow", "MMEB_V2_VIDEO_SAMPLING", "read_mmeb_train", "read_mbeir_train",
    "read_corpus_ids", "read_jsonl_examples", "read_mmeb_v1", "read_mmeb_v1_suite", "read_mmeb_v2_video",
    "read_visdoc", "read_mbeir",
]
