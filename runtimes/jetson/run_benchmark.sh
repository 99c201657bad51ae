#!/usr/bin/env bash
# Benchmark rtmw-edge artifacts on this Jetson and leave results.json to bring back for `report merge`.
#   runtimes/jetson/run_benchmark.sh ARTIFACT_OR_FOLDER... [rtmw-edge bench options, e.g. --eval GT.json]
# Environment: RTMW_EDGE = what pip installs (default rtmw-edge; a wheel or a checkout path works too),
# VENV = virtual environment to create or reuse, OUT = results folder,
# JETSON_INDEX = pip index with NVIDIA's onnxruntime-gpu for this JetPack (PyPI's aarch64 onnxruntime is CPU-only).
source "$(dirname "$0")/../common.sh"
# not the [onnxruntime] extra: its CPU wheel would shadow the GPU build (both install the `onnxruntime` module)
"$venv/bin/python" -m pip install --quiet onnxruntime-gpu --index-url "${JETSON_INDEX:-https://pypi.jetson-ai-lab.dev/jp6/cu126}"
# after NVIDIA's build: a runtime already installed is kept, so only the profile's other backends are added
install_rtmw_edge
"$venv/bin/python" -c "import onnxruntime as o, sys; p = o.get_available_providers(); \
sys.exit(0 if 'TensorrtExecutionProvider' in p else f'this onnxruntime has no TensorRT provider: {p}')"
# latency depends on the power mode (sudo nvpmodel -m 0; sudo jetson_clocks for the maximum): say which one ran
if command -v nvpmodel >/dev/null; then nvpmodel -q 2>/dev/null || true; fi
"$venv/bin/rtmw-edge" bench --device-profile "$here/profile.toml" --out "$out" "$@"
echo "bring back $out/results.json, then: rtmw-edge report merge */results.json --out compare"
