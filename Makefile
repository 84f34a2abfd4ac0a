# First two commands on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-all bench clean

setup: $(STAMP)

# torch is installed first and pinned to the local CPU wheel when no CUDA GPU is visible,
# so pip never resolves the multi-GB CUDA build on CPU machines.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		$(PIP) install -q "torch>=2.4,<2.14"; \
	else \
		$(PIP) install -q "torch==2.13.0"; \
	fi
	# dev = every extra (serve, index, eval, train, demo, teacher) + the test tools: what `make test` and `make demo` use
	$(PIP) install -q -e ".[dev]"
	# DeepSpeed ships as source only and imports torch to build: built against the torch above (no isolated
	# build, which would fetch a CUDA torch), ops compiled on first use
	$(PIP) install -q setuptools wheel
	DS_BUILD_OPS=0 $(PIP) install -q --no-build-isolation "deepspeed>=0.19,<0.20"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/uniembed demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "" tests

bench: $(STAMP)
	$(PY) benchmarks/encode_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
