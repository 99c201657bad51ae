# Sourced by each runtimes/<device>/run_benchmark.sh: arguments, the virtual environment, the results folder.
# After it: $here (the kit's folder), $venv (created if missing) and $out are set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 ARTIFACT_OR_FOLDER... [rtmw-edge bench options]" >&2; exit 2; }
venv="${VENV:-$HOME/.venvs/rtmw-edge}"
out="${OUT:-bench-$(hostname)}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# install_rtmw_edge EXTRAS: rtmw-edge with those extras into $venv. A wheel rebuilt under the same version is
# installed again (pip would keep the older copy as "already satisfied"); its dependencies are left as they are.
install_rtmw_edge() {
    local package="${RTMW_EDGE:-rtmw-edge}"
    "$venv/bin/python" -m pip install --quiet "$package[$1]"
    if [ -e "$package" ]; then "$venv/bin/python" -m pip install --quiet --no-deps --force-reinstall "$package"; fi
}
