"""The machine a figure was measured on: CPU, instruction sets, cores, OS and library versions.

The instruction set also decides how INT8 must be made: without VNNI, int8 dot products saturate.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache
from importlib import metadata as importlib_metadata
from pathlib import Path

from rtmw_edge.backends import BACKENDS

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


@cache
def cpu_flags() -> frozenset[str]:
    """Instruction-set flags of this CPU (Linux /proc/cpuinfo; empty elsewhere, which is the safe side)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return Machine(cpu=cpu_name(), arch=platform.machine(), cores=cores, isa=tuple(sorted(flags & ISA_FLAGS)),
                   flags=tuple(sorted(flags)), vnni=has_vnni(flags), os=platform.platform(),
                   hostname=platform.node(), python=platform.python_version(), libraries=tool_versions())
