"""ONNX Runtime runner: CPU by default, CUDA or TensorRT when asked and the installed build has them.

A device may be a preference list, "tensorrt,cuda,cpu" (the Jetson profile's): each is tried in turn, and every
step down says why in one warning line; a single device that cannot run is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rtmw_edge.backends.base import as_batch, select_names
from rtmw_edge.cache import cache_dir
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.fileio import ensure_writable_dir

# A QDQ graph's float-weighted Conv after a DequantizeLinear (a node the quantizer left float) would have its
# weights quantized per tensor and be fused into QLinearConv at session time: "kept float" must stay float.
DISABLED_OPTIMIZERS = ("WeightBiasQuantization",)
logger = logging.getLogger(__name__)

# device -> execution providers in preference order; the first one must be available.
_PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


class OnnxRuntimeRunner:
    """An ONNX model in one InferenceSession; a model exported with a fixed batch is run in chunks of it."""

    backend = "onnxruntime"

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        device: str | None = None,
        input_name: str | None = None,
        output_names: Sequence[str] | None = None,
        precision: str = "fp32",  # the graph itself says what it computes in (fp16 weights are cast to fp32)
    ) -> None:
        self.path = Path(path)
        self._session = _open(self.path, threads, device)
        inputs = {i.name: i for i in self._session.get_inputs()}
        self.input_name = select_names(list(inputs), [input_name] if input_name else None, "input", self.path)[0]
        shape = inputs[self.input_name].shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
            raise RtmwEdgeError(f"{self.path}: input {self.input_name} must be NCHW with fixed C,H,W, got {shape}")
        self.input_shape: tuple[int, int, int] = tuple(shape[1:])
        self._fixed_batch = shape[0] if isinstance(shape[0], int) else None
        model_outputs = [o.name for o in self._session.get_outputs()]
        self.output_names = select_names(model_outputs, output_names, "output", self.path)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = as_batch(batch, self.input_shape, self.path)
        if self._fixed_batch is None or self._fixed_batch == len(batch):
            return self._run_once(batch)
        return _run_in_chunks(self._run_once, batch, self._fixed_batch)

    def _run_once(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run(list(self.output_names), {self.input_name: batch})


def _open(path: Path, threads: int | None, device: str | None) -> ort.InferenceSession:
    """A session on the first device of `device` (one name, or a comma-separated preference list) that runs."""
    devices = [d.strip().lower() for d in (device or "cpu").split(",")]
    unknown = [d for d in devices if d not in _PROVIDERS]
    if unknown:
        raise RtmwEdgeError(f"onnxruntime: unknown device {unknown[0]!r}; choose one of {', '.join(_PROVIDERS)}")
    available = ort.get_available_providers()
    why = ""
    for step, name in enumerate(devices):
        if step:
            logger.warning("%s: trying %s", why, name)
        wanted = _PROVIDERS[name]
        if wanted[0] not in available:
            why = (f"onnxruntime: device {name!r} needs {wanted[0]}, which this onnxruntime build lacks; "
                   f"available providers: {', '.join(available)}")
            continue
        session = _session(path, threads, [_with_options(p) for p in wanted if p in available])
        if wanted[0] in session.get_providers():
            if step:
                logger.warning("onnxruntime: %s runs on %s (%s)", path.name, name, wanted[0])
            return session
        why = f"onnxruntime could not start {wanted[0]} for {path}; it runs on {session.get_providers()}"
    raise RtmwEdgeError(why)


def _with_options(provider: str) -> str | tuple[str, dict]:
    """TensorRT builds engines for minutes: fp16 plus an on-disk engine cache makes that a one-time cost."""
    if provider != "TensorrtExecutionProvider":
        return provider
    cache = ensure_writable_dir(cache_dir() / "tensorrt")
    return provider, {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}


def new_session(path: Path, threads: int | None = None, providers: Sequence = ("CPUExecutionProvider",),
                optimized_path: Path | None = None) -> ort.InferenceSession:
    """The session every runner uses; `optimized_path` receives the graph as ONNX Runtime optimized it (the
    kernels that really run)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = threads
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
        options.log_severity_level = 3  # not its warning that the file is for this CPU only: it is read once, here
    return ort.InferenceSession(str(path), sess_options=options, providers=list(providers),
                                disabled_optimizers=list(DISABLED_OPTIMIZERS))


def _session(path: Path, threads: int | None, providers: list) -> ort.InferenceSession:
    try:
        session = new_session(path, threads, providers)
    except Exception as exc:  # onnxruntime's load errors share no base class but Exception
        raise RtmwEdgeError(f"onnxruntime cannot load {path}: {exc}") from exc
    return session


def _run_in_chunks(run: Callable[[np.ndarray], list[np.ndarray]], batch: np.ndarray, size: int) -> list[np.ndarray]:
    """Feed a fixed-batch model `size` images at a time, zero-padding the last chunk and trimming its outputs."""
    parts = []
    for start in range(0, len(batch), size):
        chunk = batch[start : start + size]
        count = len(chunk)
        if count < size:
            chunk = np.concatenate([chunk, np.zeros((size - count, *chunk.shape[1:]), chunk.dtype)])
        parts.append([out[:count] for out in run(chunk)])
    return [np.concatenate(outs) for outs in zip(*parts, strict=True)]


def load(path: Path, **options) -> OnnxRuntimeRunner:
    return OnnxRuntimeRunner(path, **options)
