# Two commands do all the setup on a fresh machine: `make demo` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip --disable-pip-version-check
CLI     := $(VENV)/bin/rtmw-edge
# torch is pinned: 2.13.0 is the CPU build; anything else may pull several GB of CUDA wheels.
TORCH   := torch==2.13.0
DEMO    ?= demo-out

.PHONY: demo test lint clean arm64-check

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	# setuptools announces "Editable installation" (a notice, not a problem) because quantize/, calib_data/ and
	# runtimes/ are mapped into the package; only that notice is silenced.
	PYTHONWARNINGS="ignore:Editable installation" $(PIP) install -q -e '.[dev]'
	# xtcocotools, the reference COCO-WholeBody evaluator: its wheel is built for numpy 1, so build it here.
	$(PIP) install -q --no-deps --no-build-isolation --no-binary xtcocotools xtcocotools==1.14.3
	touch $@

demo: $(VENV)/.installed
	$(CLI) models
	# the main job, offline: INT8 rtmw-m for OpenVINO, calibrated on the shipped photos, gated against FP32
	$(CLI) quantize --backend openvino --weights auto --allow-untrained --out $(DEMO) --overwrite
	$(CLI) predict calib_data/*.jpg --model $(DEMO)/rtmw-m-256x192-openvino/rtmw-m-256x192-openvino-int8 \
		--detector none --out $(DEMO)/overlays --overwrite
	@echo "table and report: $(DEMO)/rtmw-m-256x192-openvino/report.md (record: quantization.json)"
	@echo "overlays of the INT8 model's keypoints: $(DEMO)/overlays/"

test: $(VENV)/.installed
	$(VENV)/bin/ruff check rtmw_edge tests benchmarks
	$(PY) -m pytest -q

# The Raspberry Pi kit run on arm64 through qemu-user (as root; long, see runtimes/raspberry-pi/README.md): too
# slow for `make test`.
arm64-check: $(VENV)/.installed
	X86_VENV=$(VENV) runtimes/raspberry-pi/emulate.sh

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
