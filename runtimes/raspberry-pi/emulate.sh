#!/usr/bin/env bash
# `make arm64-check`: the Raspberry Pi kit run for real on arm64, on an x86 Linux machine, through qemu-user.
#   runtimes/raspberry-pi/emulate.sh          (as root: debootstrap, chroot and mount need it)
# From nothing: a Debian bookworm arm64 root (debootstrap, Python 3.11 as on Raspberry Pi OS), the kit installed in
# it as README.md tells a Pi owner, FP32/FP16/INT8 artifacts made on x86, the kit's run_benchmark.sh run on them
# inside, the aarch64 keypoints compared with x86's, and `report merge` of both benches into $ARM64_OUT.
# The root, pip's wheels and the x86 artifacts are cached in $ARM64_CACHE (.cache/arm64, ignored by git).
# Environment: ARM64_CACHE, ARM64_OUT (default arm64-check, replaced when the run succeeds), X86_VENV (default
# .venv: the x86 rtmw-edge that makes the artifacts), RUNS (bench rounds, default 3), DEBIAN_MIRROR.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
kit="$repo/runtimes/raspberry-pi"
cache="$(mkdir -p "${ARM64_CACHE:-$repo/.cache/arm64}" && cd "${ARM64_CACHE:-$repo/.cache/arm64}" && pwd)"
root="$cache/root"
out="${ARM64_OUT:-$repo/arm64-check}"
x86="${X86_VENV:-$repo/.venv}"
runs="${RUNS:-3}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
started=$SECONDS
say() { echo "arm64-check: $*"; }
die() { echo "arm64-check: error: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mount need it)"
[ -x "$x86/bin/rtmw-edge" ] || die "$x86/bin/rtmw-edge not found: make .venv/.installed first (or set X86_VENV)"
missing=()
for tool in debootstrap:debootstrap qemu-aarch64-static:qemu-user-static gcc:gcc; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian's ${missing[*]}"
    apt-get install -y -q "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi

# --- the arm64 root, built once -----------------------------------------------------------------------------------
# The kernel here has no binfmt_misc entry for arm64, so it cannot start an arm64 program: debootstrap's second
# stage (which runs hundreds of them) cannot run. Its first stage downloads and unpacks; the rest of the packages
# are unpacked with the host's dpkg-deb (no maintainer scripts: none of them matter for Python), and each arm64
# program is replaced by through-qemu, a static x86 binary that runs the real one (kept under /qemu-real) emulated.
build_root() {
    local new="$root.partial"
    rm -rf "$new"
    say "debootstrap: Debian bookworm arm64 from $mirror"
    debootstrap --foreign --arch arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$new" "$mirror" >"$cache/debootstrap.log" 2>&1 || die "debootstrap failed: see $cache/debootstrap.log"
    for deb in "$new"/var/cache/apt/archives/*.deb; do   # --keep-directory-symlink: /bin stays a link to usr/bin
        dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$new"
    done
    rm -f "$new"/var/cache/apt/archives/*.deb
    # in a container debootstrap links proc to the host's /proc: a mount there would land on the host's
    if [ -L "$new/proc" ]; then rm "$new/proc"; fi
    mkdir -p "$new/proc"
    cp "$(command -v qemu-aarch64-static)" "$new/usr/bin/"
    gcc -static -O2 -o "$new/usr/bin/through-qemu" "$kit/emulate/through-qemu.c"
    local wrapped=0 file
    while IFS= read -r -d '' file; do
        # ELF, 64-bit, e_machine 0xb7 (AArch64): bytes 0-3, 4 and 18-19
        local head; head="$(od -An -tx1 -N20 "$file" | tr -d ' \n')"
        [[ $head == 7f454c4602* && ${head:36:4} == b700 ]] || continue
        mkdir -p "$new/qemu-real$(dirname "${file#"$new"}")"
        mv "$file" "$new/qemu-real${file#"$new"}"
        ln "$new/usr/bin/through-qemu" "$file"
        wrapped=$((wrapped + 1))
    done < <(find "$new/usr/bin" "$new/usr/sbin" -type f -perm -u+x -print0)
    say "root: $wrapped arm64 programs run through qemu-aarch64-static"
    touch "$new/.rtmw-edge-root"
    rm -rf "$root"
    mv "$new" "$root"
}
[ -e "$root/.rtmw-edge-root" ] || build_root

# --- inside the root: /proc (through-qemu reads /proc/self/exe), /dev, and pip's cache kept outside it ---------------
# Not /sys: the host's describes x86 cores, and ONNX Runtime's cpuinfo, reading them as arm64's, crashes at import
# (segmentation fault); without it cpuinfo warns and ONNX Runtime counts the cores itself.
mounted=()
cleanup() { local m; for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
mkdir -p "$cache/pip" "$root/var/cache/pip"
for target in "$root/proc" "$root/dev" "$root/var/cache/pip"; do   # never a link: the mount would follow it out
    [ -d "$target" ] && [ ! -L "$target" ] || die "$target is not a plain folder: remove $root and run again"
done
mount -t proc proc "$root/proc" && mounted+=("$root/proc")
mount --bind /dev "$root/dev" && mounted+=("$root/dev")
mount --bind "$cache/pip" "$root/var/cache/pip" && mounted+=("$root/var/cache/pip")
cp /etc/resolv.conf "$root/etc/resolv.conf"
# a machine whose traffic passes a proxy with its own certificate authority names it in PIP_CERT: take it along
cert=""
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then cp "$PIP_CERT" "$root/etc/host-ca.crt"; cert=/etc/host-ca.crt; fi
# a command in the root as on a Pi: bash as root, home /root; RTMW_EDGE_EMULATED marks the emulation. The CPU is a
# Raspberry Pi 5's Cortex-A76 (QEMU_CPU): qemu's default 'max' adds SVE and SME, which no Pi has, and ONNX Runtime's
# fp16 path crashed on it under emulation (segmentation fault)
inside() {
    chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        QEMU_CPU="${QEMU_CPU:-cortex-a76}" \
        PIP_CACHE_DIR=/var/cache/pip PIP_DISABLE_PIP_VERSION_CHECK=1 ${cert:+PIP_CERT=$cert} \
        ${HTTPS_PROXY:+HTTPS_PROXY=$HTTPS_PROXY} ${https_proxy:+https_proxy=$https_proxy} \
        RTMW_EDGE_EMULATED=qemu-user /bin/bash -c "$1"
}
inside 'python3 -c "import platform, sys; print(platform.machine(), sys.version.split()[0])"' \
    | grep -q '^aarch64 3\.11' || die "the root's python3 is not an aarch64 Python 3.11"

# --- x86: the rtmw-edge wheel, and FP32, FP16 and INT8 artifacts of untrained rtmw-m -----------------------------
rm -rf "$root/work"
mkdir -p "$root/work"
"$x86/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$root/work/dist" "$repo" >/dev/null
wheel="$(cd "$root/work/dist" && ls rtmw_edge-*.whl)"
# the kit's profile says which backends run here (ranked) and so which pip extras install them
read -r -a backends <<<"$("$x86/bin/python" -c 'import sys
from rtmw_edge.profiles import load_profile
print(*load_profile(sys.argv[1]).backends)' "$kit/profile.toml")"
extras="$("$x86/bin/python" -c 'import sys
from rtmw_edge.backends import get_backend
print(",".join(get_backend(name).extra for name in sys.argv[1:]))' "${backends[@]}")"
# made again only when the code or the recipe changed: the stamp is the hash of both
work="$cache/x86-artifacts"
stamp="$(cd "$repo" && find rtmw_edge quantize -name '*.py' -o -name '*.toml' | sort | xargs cat \
    "$kit/emulate/quick-recipe.toml" | sha256sum | cut -c1-16)"
if [ "$(cat "$work/stamp" 2>/dev/null)" != "$stamp" ]; then
    say "x86: artifacts (untrained rtmw-m; small calibration: $kit/emulate/quick-recipe.toml)"
    rm -rf "$work"
    mkdir -p "$work"
    # FP32, INT8 and the float precisions x86 can make, of the profile's two first backends (the third's ARM plugin
    # has no int8 kernels, and every artifact costs minutes under emulation)
    for backend in "${backends[@]:0:2}"; do
        "$x86/bin/rtmw-edge" quantize --backend "$backend" --weights untrained --allow-untrained \
            --recipe "$kit/emulate/quick-recipe.toml" --out "$work/quantized" >"$work/quantize-$backend.log" 2>&1 \
            || die "x86 quantize --backend $backend failed: see $work/quantize-$backend.log"
    done
    echo "$stamp" >"$work/stamp"
fi
cp -r "$work/quantized" "$root/work/quantized"
cp -r "$repo/runtimes" "$root/work/runtimes"
cp "$repo"/calib_data/*.jpg "$root/work/"

new="$out.partial"
rm -rf "$new"
mkdir -p "$new"
say "x86: bench ($runs rounds, batch 1)"
"$x86/bin/rtmw-edge" bench "$work/quantized" --runs "$runs" --batch 1 --label x86-64 --out "$new/x86" >"$new/x86.log" 2>&1 \
    || die "x86 bench failed: see $new/x86.log"
"$x86/bin/python" "$kit/emulate/keypoints.py" dump "$work/quantized" --images "$repo"/calib_data/*.jpg \
    --out "$root/work/x86-keypoints.npz"

# --- aarch64: the kit as a Pi owner installs and runs it (README.md) ---------------------------------------------
say "aarch64: install (README.md: python3 -m venv ~/.venvs/rtmw-edge; pip install 'rtmw-edge[$extras]')"
inside "cd /work && python3 -m venv ~/.venvs/rtmw-edge && ~/.venvs/rtmw-edge/bin/pip install --quiet \
    'dist/$wheel[$extras]'" >"$new/aarch64-install.log" 2>&1 \
    || die "aarch64 install failed: see $new/aarch64-install.log"
say "aarch64: runtimes/raspberry-pi/run_benchmark.sh ($runs rounds, batch 1)"
threads=$(( $(nproc) < 4 ? $(nproc) : 4 ))   # the profile's 4 (a Pi's cores) where this machine has them
inside "cd /work && RTMW_EDGE=dist/$wheel OUT=bench-aarch64 runtimes/raspberry-pi/run_benchmark.sh quantized/ \
    --runs $runs --batch 1 --threads $threads" >"$new/aarch64.log" 2>&1 || die "aarch64 run_benchmark.sh failed: see $new/aarch64.log"
cp -r "$root/work/bench-aarch64" "$new/aarch64"
# the Jetson kit's part that runs without a GPU: its first backend's device preference list on aarch64, each
# step down one line, then the model on the CPU (the install is the same wheels; no NVIDIA provider here)
read -r jetson_backend jetson_device <<<"$("$x86/bin/python" -c 'import sys
from rtmw_edge.profiles import load_profile
profile = load_profile(sys.argv[1])
print(profile.backends[0], profile.runner_options(profile.backends[0])["device"])' "$repo/runtimes/jetson/profile.toml")"
say "aarch64: the Jetson profile's $jetson_backend device '$jetson_device'"
inside "cd /work && ~/.venvs/rtmw-edge/bin/rtmw-edge predict astronaut.jpg --detector none --out jetson-predict \
    --model quantized/rtmw-m-256x192-$jetson_backend/rtmw-m-256x192-$jetson_backend-fp32 --device '$jetson_device'" \
    >"$new/jetson-fallback.log" 2>&1 || die "the Jetson device fallback failed: see $new/jetson-fallback.log"
inside "cd /work && ~/.venvs/rtmw-edge/bin/python runtimes/raspberry-pi/emulate/keypoints.py dump quantized \
    --crops-from x86-keypoints.npz --out aarch64-keypoints.npz"

# --- the comparison: keypoints, and one merged report ------------------------------------------------------------
"$x86/bin/python" "$kit/emulate/keypoints.py" compare "$root/work/x86-keypoints.npz" "$root/work/aarch64-keypoints.npz" \
    --results "$new/aarch64/results.json" --seconds $((SECONDS - started)) --out "$new/agreement.json"
"$x86/bin/rtmw-edge" report merge "$new/x86/results.json" "$new/aarch64/results.json" --out "$new/merged" >/dev/null
rm -rf "$out"
mv "$new" "$out"
say "done in $((SECONDS - started)) s: $out/merged/report.md, $out/aarch64/results.json, $out/agreement.json"
