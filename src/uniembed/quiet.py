"""Third-party chatter kept out of uniembed's output (the CLI calls `quiet_third_party_logs` at start).

- FAISS logs at INFO, on every import, which build it tries ("Loading faiss with AVX512 support", "Could not
  load library with AVX512 support due to: ModuleNotFoundError..."): noise at the CLI's INFO level. Its
  loader's logger is raised to WARNING (a failed load is still reported).
- DeepSpeed's first import prints "Setting accelerator to CPU. If you have GPU or other accelerator, we were
  unable to detect it." as a WARNING to stdout (its own handler) on any machine without CUDA. uniembed imports
  DeepSpeed only to run its engine (training/zero.py), but `transformers`' `save_pretrained` imports it too
  (accelerate's `extract_model_from_parallel` checks for a DeepSpeed engine), so every saved model printed the
  line, into stdout. On a CPU machine the notice says nothing the user does not know: that one message is
  dropped; every other DeepSpeed message passes.

With `--verbose` nothing is filtered.
"""
from __future__ import annotations

import logging

CPU_ACCELERATOR_NOTICE = "Setting accelerator to CPU"


def _not_cpu_accelerator_notice(record: logging.LogRecord) -> bool:
    return CPU_ACCELERATOR_NOTICE not in str(record.msg)


def quiet_third_party_logs() -> None:
    """Raise FAISS's loader logger to WARNING and drop DeepSpeed's CPU-accelerator notice (idempotent).

    Loggers are configured by name before the libraries are imported: FAISS's loader never sets its own level,
    and DeepSpeed resets its logger's level on import but keeps the filters a logger already has."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    deepspeed = logging.getLogger("DeepSpeed")
    if _not_cpu_accelerator_notice not in deepspeed.filters:
        deepspeed.addFilter(_not_cpu_accelerator_notice)
