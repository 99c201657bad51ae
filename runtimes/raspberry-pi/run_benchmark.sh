#!/usr/bin/env bash
# Benchmark rtmw-edge artifacts on this Raspberry Pi and leave results.json to bring back for `report merge`.
#   runtimes/raspberry-pi/run_benchmark.sh ARTIFACT_OR_FOLDER... [rtmw-edge bench options, e.g. --eval GT.json]
# Environment: RTMW_EDGE = what pip installs (default rtmw-edge; a wheel or a checkout path works too),
# VENV = virtual environment to create or reuse (Raspberry Pi OS refuses system-wide pip), OUT = results folder.
source "$(dirname "$0")/../common.sh"
install_rtmw_edge
# a hot Pi lowers its clock mid-run: 0x0 means it was never throttled since boot
if command -v vcgencmd >/dev/null; then echo "before: $(vcgencmd get_throttled)"; fi
"$venv/bin/rtmw-edge" bench --device-profile "$here/profile.toml" --out "$out" "$@"
if command -v vcgencmd >/dev/null; then echo "after: $(vcgencmd get_throttled)"; fi
echo "bring back $out/results.json, then: rtmw-edge report merge */results.json --out compare"
