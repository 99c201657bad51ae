# Sourced by each runtimes/<device>/run_benchmark.sh: arguments, the virtual environment, the results folder.
# After it: $here (the kit's folder), $venv (created if missing) and $out are set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 ARTIFACT_OR_FOLDER... [rtmw-edge bench options]" >&2; exit 2; }
venv="${VENV:-$HOME/.venvs/rtmw-edge}"
out="${OUT:-bench-$(hostname)}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
