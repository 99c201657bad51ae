#!/usr/bin/env bash
# Benchmark rtmw-edge artifacts on this x86-64 CPU and leave results.json to bring back for `report merge`.
#   runtimes/intel-cpu/run_benchmark.sh ARTIFACT_OR_FOLDER... [rtmw-edge bench options, e.g. --eval GT.json]
# Environment: RTMW_EDGE = what pip installs (default rtmw-edge; a wheel or a checkout path works too),
# VENV = virtual environment to create or reuse, OUT = results folder.
source "$(dirname "$0")/../common.sh"
install_rtmw_edge report
# INT8 speed hinges on these: VNNI (avx512_vnni / avx_vnni) or AMX, else AVX2 only
grep -o -w -E 'avx2|avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ' || true
echo
"$venv/bin/rtmw-edge" bench --device-profile "$here/profile.toml" --out "$out" "$@"
echo "bring back $out/results.json, then: rtmw-edge report merge */results.json --out compare"
