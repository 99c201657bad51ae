"""The machine a figure was measured on: CPU, instruction sets, cores, OS and library versions.

The instruction set also decides how INT8 must be made: without VNNI, int8 dot products saturate.
"""

from __future__ import annotations

import os
import platform
import struct
from dataclasses import dataclass
from functools import cache
from importlib import metadata as importlib_metadata
from pathlib import Path

from rtmw_edge.backends import BACKENDS, usable_cores

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
# the flags that decide INT8, BF16 and FP16 speed, recorded with every measurement
ISA_FLAGS = frozenset({"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "avx512_bf16",
                       "avx512_fp16", "neon", "asimd", "asimddp", "fphp", "asimdhp"})


@dataclass(frozen=True)
class Machine:
    """What decides the numbers measured on a machine."""

    cpu: str
    arch: str
    cores: int  # the cores this process may run on
    isa: tuple[str, ...]  # the flags of ISA_FLAGS this CPU has, sorted
    flags: tuple[str, ...]  # every instruction-set flag, sorted
    vnni: bool
    os: str
    hostname: str
    python: str
    libraries: dict[str, str]  # installed version of each tool that shapes an artifact or runs it
    emulated: str | None = None  # how the CPU is emulated (qemu-user): its timings are not the real device's


# Emulation: an environment variable the emulating script sets, or /proc/cpuinfo describing another architecture
# than the one this process runs (qemu-user passes the host's through), is how an emulated run is told apart.
EMULATED_ENV = "RTMW_EDGE_EMULATED"
# AArch64 AT_HWCAP bits (Linux arch/arm64/include/uapi/asm/hwcap.h), named as /proc/cpuinfo names them
AARCH64_HWCAP = ("fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp",
                 "cpuid", "asimdrdm", "jscvt", "fcma", "lrcpc", "dcpop", "sha3", "sm3", "sm4", "asimddp", "sha512",
                 "sve", "asimdfhm", "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb", "paca", "pacg")
AT_HWCAP = 16


def _family(arch: str) -> str:
    return "arm" if arch.lower().startswith(("aarch64", "arm")) else "x86" if arch.lower() in (
        "x86_64", "amd64", "i386", "i686") else arch.lower()


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpuinfo_family(text: str) -> str | None:
    keys = {line.split(":", 1)[0].strip() for line in text.splitlines()}
    return "x86" if "vendor_id" in keys else "arm" if "CPU implementer" in keys else None


@cache
def emulation() -> str | None:
    """How this process's CPU is emulated, or None on a real one."""
    if named := os.environ.get(EMULATED_ENV):
        return named
    seen = _cpuinfo_family(_cpuinfo())
    if seen is not None and seen != _family(platform.machine()):
        return f"{platform.machine()} on an {seen} CPU"
    return None


@cache
def cpu_flags() -> frozenset[str]:
    """Instruction-set flags of this CPU (Linux /proc/cpuinfo; empty elsewhere, which is the safe side). Emulated
    on another architecture, /proc/cpuinfo is the host's: the emulated CPU's flags come from its AT_HWCAP."""
    text = _cpuinfo()
    if _cpuinfo_family(text) not in (None, _family(platform.machine())):
        return _hwcap_flags() if _family(platform.machine()) == "arm" else frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def _hwcap_flags() -> frozenset[str]:
    """The AArch64 flags of AT_HWCAP in /proc/self/auxv (qemu-user answers it for the CPU it emulates)."""
    try:
        data = Path("/proc/self/auxv").read_bytes()
    except OSError:
        return frozenset()
    pairs = struct.iter_unpack("QQ", data[: len(data) // 16 * 16])  # (type, value) of 64-bit unsigned longs
    hwcap = next((value for key, value in pairs if key == AT_HWCAP), 0)
    return frozenset(name for bit, name in enumerate(AARCH64_HWCAP) if hwcap >> bit & 1)


def cpu_name() -> str:
    name = next((line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines() if line.startswith("model name")),
                None) or platform.processor() or platform.machine()
    how = emulation()
    return f"{platform.machine()} emulated ({how}) on {name}" if how else name


def has_vnni(flags: frozenset[str] | None = None) -> bool:
    return bool((cpu_flags() if flags is None else flags) & VNNI_FLAGS)


def resolve_auto(value: str | bool, flags: frozenset[str] | None = None) -> bool:
    """'auto' -> True on x86 CPUs without VNNI (where the saturation workaround is needed)."""
    if isinstance(value, bool):
        return value
    if value != "auto":
        raise ValueError(f"expected true, false or 'auto', got {value!r}")
    return not has_vnni(flags)


# the packages whose versions decide a result, with every backend's runtime packages
TOOLS = ("rtmw-edge", "torch", "onnx", "pnnx", "numpy", "opencv-python-headless")


def tool_versions() -> dict[str, str]:
    """Installed versions of the tools that shape an artifact or a measurement (absent ones are left out)."""
    found = {"python": platform.python_version()}
    for name in dict.fromkeys([*TOOLS, *(p for b in BACKENDS.values() for p in b.packages)]):
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def describe_machine() -> Machine:
    """This machine, as it runs this process."""
    flags = cpu_flags()
    return Machine(cpu=cpu_name(), arch=platform.machine(), cores=usable_cores(), isa=tuple(sorted(flags & ISA_FLAGS)),
                   flags=tuple(sorted(flags)), vnni=has_vnni(flags), os=platform.platform(),
                   hostname=platform.node(), python=platform.python_version(), libraries=tool_versions(),
                   emulated=emulation())
