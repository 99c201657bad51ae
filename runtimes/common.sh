# Sourced by each runtimes/<device>/run_benchmark.sh: arguments, the virtual environment, the results folder.
# After it: $here (the kit's folder), $venv (created if missing) and $out are set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 ARTIFACT_OR_FOLDER... [rtmw-edge bench options]" >&2; exit 2; }
venv="${VENV:-$HOME/.venvs/rtmw-edge}"
out="${OUT:-bench-$(hostname)}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# install_rtmw_edge [EXTRA...]: rtmw-edge into $venv with the pip extras of this kit's profile.toml backends
# (their `Backend` records say which; a runtime already installed, such as a vendor's own build, is kept, not
# shadowed by PyPI's) and any EXTRA given. A wheel rebuilt under the same version is installed again (pip would
# keep the older copy as "already satisfied").
install_rtmw_edge() {
    local package="${RTMW_EDGE:-rtmw-edge}" extras
    "$venv/bin/python" -m pip install --quiet "$package"
    if [ -e "$package" ]; then "$venv/bin/python" -m pip install --quiet --no-deps --force-reinstall "$package"; fi
    extras="$("$venv/bin/python" -c 'import importlib.util, sys
from rtmw_edge.backends import get_backend
from rtmw_edge.profiles import load_profile
records = [get_backend(name) for name in load_profile(sys.argv[1]).backends]
print(",".join([r.extra for r in records if importlib.util.find_spec(r.packages[0]) is None] + sys.argv[2:]))' \
        "$here/profile.toml" "$@")"
    if [ -n "$extras" ]; then "$venv/bin/python" -m pip install --quiet "$package[$extras]"; fi
}
