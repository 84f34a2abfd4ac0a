#!/usr/bin/env bash
# The GPU benchmark: on one H100/H200 it runs in under 8 minutes and writes benchmarks/results/gpu-DATE.md
# (and .json). Nothing is downloaded; what is missing (e.g. flash-attn) is reported and skipped.
#   benchmarks/gpu/run.sh                       # the GPU run
#   benchmarks/gpu/run.sh --smoke               # the same code at tiny size on CPU (tests/test_gpu_benchmark.py)
#   benchmarks/gpu/run.sh --sections "encode sdpa" --out /tmp/encode.md
# Python: $PYTHON, else the repository's .venv, else python3.
set -u
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
limit=480  # the GPU run's 8 minutes (bench.py budgets 450 s); the smoke run may meet a loaded CPU
for argument in "$@"; do [ "$argument" = "--smoke" ] && limit=900; done
exec timeout "$limit" "$python" "$root/benchmarks/gpu/bench.py" "$@"
