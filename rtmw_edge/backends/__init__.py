"""The one table of backends. Each subpackage of `rtmw_edge.backends` is one backend and defines `BACKEND`, its
`Backend` record; adding a backend is adding a folder. A backend's runtime is imported only when it is used."""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

from rtmw_edge.backends.base import Backend, Runner
from rtmw_edge.errors import RtmwEdgeError

__all__ = ["BACKENDS", "REFERENCE_BACKEND", "Backend", "Runner", "backend_for", "backend_names", "check_threads",
           "get_backend", "open_runner", "usable_cores"]


def _discover() -> dict[str, Backend]:
    records = [importlib.import_module(f"{__name__}.{info.name}").BACKEND
               for info in pkgutil.iter_modules(__path__) if info.ispkg]
    return {record.name: record for record in sorted(records, key=lambda r: (not r.reference, r.name))}


BACKENDS: dict[str, Backend] = _discover()  # the reference backend first, then by name
REFERENCE_BACKEND: str = next(iter(BACKENDS))  # the float baseline (what rtmlib runs)
_NAMES: dict[str, str] = {alias: b.name for b in BACKENDS.values() for alias in (b.name, *b.aliases)}


def backend_names(aliases: bool = False) -> tuple[str, ...]:
    """The backends' names, for CLI choices and checks; with `aliases`, every name a user may type."""
    return tuple(_NAMES) if aliases else tuple(BACKENDS)


def get_backend(name: str) -> Backend:
    """The record of `name` (or one of its aliases, e.g. the file format's name)."""
    if name not in _NAMES:
        known = ", ".join(b.name + (f" ({'/'.join(b.aliases)})" if b.aliases else "") for b in BACKENDS.values())
        raise RtmwEdgeError(f"unknown backend {name!r}; choose one of {known}")
    return BACKENDS[_NAMES[name]]


def backend_for(path: str | Path) -> str:
    """The backend that reads this file, from its suffix, so callers never have to name one."""
    suffix = Path(path).suffix.lower()
    for backend in BACKENDS.values():
        if backend.suffix == suffix:
            return backend.name
    supported = ", ".join(f"{b.suffix} ({b.name})" for b in BACKENDS.values())
    raise RtmwEdgeError(f"{path}: unknown model suffix {suffix!r}; supported: {supported}")


def usable_cores() -> int:
    """The CPUs this process may run on (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_threads(threads: int | None) -> int | None:
    """None leaves the choice to the runtime; otherwise 1 up to the CPUs this process may use, since more
    threads than cores only makes every runtime slower (a hundred times, with --threads 1000)."""
    if threads is None:
        return None
    cores = usable_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= cores:
        raise RtmwEdgeError(f"threads must be a whole number from 1 to {cores} (the CPUs this machine gives "
                            f"this process), got {threads!r}")
    return threads


def open_runner(path: str | Path, backend: str | None = None, **options) -> Runner:
    """Load `path` on `backend` (default: from the suffix); options go to the backend's runner."""
    path = Path(path)
    if not path.is_file():
        raise RtmwEdgeError(f"model file {path} does not exist")
    record = get_backend(backend or backend_for(path))
    if "threads" in options:
        options["threads"] = check_threads(options["threads"])
    return record.open(path, **options)
