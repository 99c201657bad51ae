"""The CPU's instruction set decides how INT8 must be made: without VNNI, int8 dot products saturate."""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
# the flags that decide INT8 and FP16 speed, recorded with every measurement
ISA_FLAGS = frozenset({"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "neon", "asimd",
                       "asimddp", "fphp", "asimdhp"})


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
