"""Benchmark suites: each turns a local data directory into `EvalTask`s. Importing this registers them all."""
from .base import SUITES, Suite, SuiteOptions, get_suite, register, select
from . import zeroshot  # noqa: F401  (registers circo, fashioniq, text-video, long-captions, sugarcrepe)
from . import beir, mmeb, mbeir, synthetic  # noqa: F401

__all__ = ["SUITES", "Suite", "SuiteOptions", "get_suite", "register", "select"]
