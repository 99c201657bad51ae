# Two commands do all the setup on a fresh machine: `make demo` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip --disable-pip-version-check
CLI     := $(VENV)/bin/rtmw-edge
# torch is pinned: 2.13.0 is the CPU build; anything else may pull several GB of CUDA wheels.
TORCH   := torch==2.13.0
DEMO    ?= demo-out

.PHONY: demo test lint clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[dev]'
	# xtcocotools, the reference COCO-WholeBody evaluator: its wheel is built for numpy 1, so build it here.
	$(PIP) install -q cython
	$(PIP) install -q --no-deps --no-build-isolation --no-binary xtcocotools xtcocotools==1.14.3
	touch $@

demo: $(VENV)/.installed
	$(CLI) models
	$(CLI) export --model rtmw-m --format onnx --weights auto --allow-untrained --out $(DEMO) --overwrite
	$(CLI) export --model rtmw-m --format openvino --weights auto --allow-untrained --out $(DEMO) --overwrite
	$(CLI) export --model rtmw-m --format ncnn --weights auto --allow-untrained --out $(DEMO) --overwrite
	@echo "demo artifacts (each with its metadata.json) are in $(DEMO)/"

test: $(VENV)/.installed
	$(VENV)/bin/ruff check rtmw_edge tests
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
