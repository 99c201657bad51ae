"""Open a network file on the backend its suffix names; a backend's package is imported only when used."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rtmw_edge.backends.base import Runner
from rtmw_edge.errors import MissingExtraError, RtmwEdgeError

__all__ = ["BACKENDS", "Runner", "as_batch", "backend_for", "open_runner", "select_names"]

# backend -> (runner module, runner class, pip extra that installs its runtime)
_RUNNERS: dict[str, tuple[str, str, str]] = {
    "onnxruntime": ("rtmw_edge.backends.onnxruntime", "OnnxRuntimeRunner", "onnxruntime"),
    "openvino": ("rtmw_edge.backends.openvino", "OpenVinoRunner", "openvino"),
    "ncnn": ("rtmw_edge.backends.ncnn", "NcnnRunner", "ncnn"),
}
_SUFFIXES: dict[str, str] = {".onnx": "onnxruntime", ".xml": "openvino", ".param": "ncnn"}

BACKENDS: tuple[str, ...] = tuple(_RUNNERS)
REFERENCE_BACKEND = "onnxruntime"  # the baseline backend (rtmlib's)


def backend_for(path: str | Path) -> str:
    """The backend that reads this file, from its suffix, so callers never have to name one."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        supported = ", ".join(f"{s} ({b})" for s, b in _SUFFIXES.items())
        raise RtmwEdgeError(f"{path}: unknown model suffix {suffix!r}; supported: {supported}")
    return _SUFFIXES[suffix]


def open_runner(path: str | Path, backend: str | None = None, **options) -> Runner:
    """Load `path` on `backend` (default: from the suffix); options go to the runner's constructor."""
    path = Path(path)
    if not path.is_file():
        raise RtmwEdgeError(f"model file {path} does not exist")
    backend = backend or backend_for(path)
    if backend not in _RUNNERS:
        raise RtmwEdgeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    module_name, class_name, extra = _RUNNERS[backend]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.startswith("rtmw_edge"):
            raise
        raise MissingExtraError(exc.name.split(".")[0], extra) from exc
    return getattr(module, class_name)(path, **options)


def select_names(available: Sequence[str], wanted: Sequence[str] | None, what: str, path: Path) -> tuple[str, ...]:
    """`wanted` (default: all of `available`), checked so a typo fails with the names that exist."""
    if wanted is None:
        return tuple(available)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise RtmwEdgeError(f"{path}: no {what} named {', '.join(unknown)}; it has {', '.join(available)}")
    return tuple(wanted)


def as_batch(batch: np.ndarray, input_shape: tuple[int, int, int], path: Path) -> np.ndarray:
    """The batch as contiguous float32 NCHW, rejected with a clear message when its shape cannot fit."""
    batch = np.asarray(batch)
    if batch.ndim != 4 or batch.shape[0] < 1 or tuple(batch.shape[1:]) != tuple(input_shape):
        raise RtmwEdgeError(f"{path}: expected a batch [N,{','.join(map(str, input_shape))}], got {batch.shape}")
    return np.ascontiguousarray(batch, dtype=np.float32)
