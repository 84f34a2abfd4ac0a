# First two commands on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-all test-interop bench clean

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

# Interop (issue 24): transformers' Qwen-VL processors need torchvision, and PyPI's torchvision does not import
# beside the CPU torch 2.13.0 wheel ("operator torchvision::nms does not exist"). A second venv holds a
# torch/torchvision pair that imports together and runs on CPU and GPU alike, and the LOW end of the transformers
# range (the default venv resolves the high end), so both ends are tested. UNIEMBED_FAIL_ON_SKIP turns every skip
# into a failure: the sentence-transformers parity tests cannot pass here by skipping.
INTEROP := .venv-interop
INTEROP_PY := $(INTEROP)/bin/python
INTEROP_STAMP := $(INTEROP)/.installed
ifeq ($(shell uname -m),aarch64)
INTEROP_TORCH := torch==2.9.1 torchvision==0.24.1
INTEROP_CODEC := torchcodec==0.8.*
else
# a CUDA build (~5.5 GB in the venv) that also runs on CPU; pip on Python 3.11 finds both wheels on local disk
INTEROP_TORCH := torch==2.14.1 torchvision==0.29.1
# mteb.get_model checks an image/video model's extras (torchvision, torchcodec) by package metadata
INTEROP_CODEC := torchcodec==0.17.0
endif
INTEROP_TRANSFORMERS := transformers==5.17.0
INTEROP_TESTS := tests/models/test_export_sentence_transformers.py tests/models/test_export_files.py tests/models/test_export_multi_vector.py \
	tests/eval/test_eval_mteb.py tests/eval/test_eval_mteb_run.py tests/models/test_models_pixel_backend.py \
	tests/training/test_training_finetune_export.py tests/models/test_packing.py

$(INTEROP_STAMP): pyproject.toml
	test -x $(INTEROP_PY) || $(PYTHON) -m venv $(INTEROP)
	$(INTEROP)/bin/pip install -q --upgrade pip
	$(INTEROP)/bin/pip install -q $(INTEROP_TORCH)
	$(INTEROP)/bin/pip install -q -e ".[dev]" "$(INTEROP_TRANSFORMERS)" $(INTEROP_TORCH) "$(INTEROP_CODEC)"
	$(INTEROP_PY) -c "import torch, torchvision, transformers; print('interop venv: torch', torch.__version__, 'torchvision', torchvision.__version__, 'transformers', transformers.__version__)"
	touch $(INTEROP_STAMP)

test-interop: $(INTEROP_STAMP)
	UNIEMBED_FAIL_ON_SKIP=1 $(INTEROP_PY) -m pytest -q -n 2 $(INTEROP_TESTS)

bench: $(STAMP)
	$(PY) benchmarks/encode_throughput.py

clean:
	rm -rf $(VENV) $(INTEROP) runs .pytest_cache
