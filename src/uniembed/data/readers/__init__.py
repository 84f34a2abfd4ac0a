"""Readers for the benchmark and training formats users hold, all from local folders.

Training formats give `list[TrainingExample]`, evaluation formats give an `EvalTask`. Every reader takes
`skip_bad_rows` (count, log and skip malformed rows instead of raising `InputError`) and an optional
`ReadReport` it fills with what it kept and skipped.
"""
from __future__ import annotations

from .common import BadRow, ReadReport, split_instruction, strip_placeholders
from .corpus_ids import read_corpus, read_corpus_ids, rewrite_negative_ids
from .jsonl_pairs import read_jsonl_examples
from .mbeir import Instructions, Pool, read_instructions, read_mbeir, read_mbeir_train, read_pool, read_qrels
from .mmeb_train import read_mmeb_train
from .mmeb_v1 import read_mmeb_v1, read_mmeb_v1_suite
from .mmeb_v2_video import MMEB_V2_VIDEO_SAMPLING, read_mmeb_v2_video
from .visdoc import read_visdoc

__all__ = [
    "BadRow", "ReadReport", "split_instruction", "strip_placeholders",
    "read_mmeb_train", "read_mbeir_train", "read_corpus_ids", "read_corpus", "rewrite_negative_ids",
    "read_jsonl_examples",
    "read_mmeb_v1", "read_mmeb_v1_suite", "read_mmeb_v2_video", "MMEB_V2_VIDEO_SAMPLING", "read_visdoc",
    "read_mbeir", "read_pool", "read_qrels", "read_instructions", "Instructions", "Pool",
]
