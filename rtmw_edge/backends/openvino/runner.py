"""OpenVINO runner for IR (.xml + .bin): CPU by default, GPU or NPU when the machine has them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import openvino as ov
from openvino.preprocess import ColorFormat, PrePostProcessor

from rtmw_edge.backends.base import as_batch, as_pixels, select_names
from rtmw_edge.backends.openvino import BACKEND
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.machine import cpu_flags

# the CPU plugin's INFERENCE_PRECISION_HINT for what an artifact computes in; INT8's float parts compute in what
# its recipe's `float_parts` says, kept in the IR (bf16 only where the CPU has bf16 units)
CPU_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
FLOAT_PARTS = ("f32", "bf16")  # the INT8 recipe's `float_parts` choices
FLOAT_PARTS_INFO = ["rtmw_edge", "float_parts"]  # where the IR keeps the choice


class OpenVinoRunner:
    """An IR compiled once with a free batch axis, run through one reused infer request; given pixels, a second
    compilation with OpenVINO's own pre-processing in front (uint8 BGR NHWC in, the same network after it)."""

    backend = "openvino"

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        device: str | None = None,
        input_name: str | None = None,
        output_names: Sequence[str] | None = None,
        precision: str = "fp32",
    ) -> None:
        self.path = Path(path)
        core = ov.Core()
        device = _check_device(core, device or "CPU")
        if device == "CPU" and (reason := BACKEND.lacks(precision, cpu_flags())):
            raise RtmwEdgeError(f"{self.path}: {reason}")
        model = _read(core, self.path)
        inputs = [i.get_any_name() for i in model.inputs]
        self.input_name = select_names(inputs, [input_name] if input_name else None, "input", self.path)[0]
        self.input_shape = _free_batch(model, self.input_name, self.path)
        outputs = [o.get_any_name() for o in model.outputs]
        self.output_names = select_names(outputs, output_names, "output", self.path)
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        self.computes: str | None = None  # the CPU's INFERENCE_PRECISION_HINT (None: the device's own choice)
        if device == "CPU":
            # CPUs with bf16 units default to bf16 (Arm ones to f16), which moves boxes by pixels: an artifact
            # computes in the precision it names, so FP32 keypoints match ONNX's.
            self.computes = _float_parts(model) if precision == "int8" else CPU_HINTS[BACKEND.computes(precision)]
            config["INFERENCE_PRECISION_HINT"] = self.computes
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self._compile = lambda m: _Compiled(core.compile_model(m, device, config), self.output_names)
        self._model = model
        self._float: _Compiled | None = self._compile(model)  # at opening: its errors and time belong to loading
        self._float_used = False
        self._pixels: dict[tuple, _Compiled] = {}

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        if self._float is None:
            self._float = self._compile(self._model)
        self._float_used = True
        return self._float.run(self.input_name, as_batch(batch, self.input_shape, self.path))

    def run_pixels(self, pixels: np.ndarray, mean_rgb: Sequence[float], std_rgb: Sequence[float]) -> list[np.ndarray]:
        key = (tuple(mean_rgb), tuple(std_rgb))
        if key not in self._pixels:
            self._pixels[key] = self._compile(_with_pixel_input(self._model, self.input_name, *key))
            if not self._float_used:  # a Predictor's runner: the float compilation would only hold memory
                self._float = None
        return self._pixels[key].run(self.input_name, as_pixels(pixels, self.input_shape, self.path))


class _Compiled:
    """One compiled model and its reused infer request."""

    def __init__(self, compiled: ov.CompiledModel, output_names: Sequence[str]) -> None:
        self._ports = [compiled.output(name) for name in output_names]
        self._request = compiled.create_infer_request()

    def run(self, input_name: str, batch: np.ndarray) -> list[np.ndarray]:
        self._request.infer({input_name: batch})
        # The request reuses its output buffers on the next call, so hand out copies.
        return [self._request.get_tensor(port).data.copy() for port in self._ports]


def _with_pixel_input(model: ov.Model, input_name: str, mean_rgb: tuple, std_rgb: tuple) -> ov.Model:
    """`model` behind OpenVINO's pre-processing: uint8 BGR NHWC -> float32 RGB NCHW, (x - mean) / std."""
    steps = PrePostProcessor(model.clone())
    given = steps.input(input_name)
    given.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
    given.model().set_layout(ov.Layout("NCHW"))
    given.preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB) \
        .mean(list(mean_rgb)).scale(list(std_rgb))
    return steps.build()


def _float_parts(model: ov.Model) -> str:
    """What an INT8 IR's float parts (the layers its recipe kept float) compute in: bf16 where its quantizer said
    so and this CPU has bf16 units (4-12% faster for rtmw-m on AMX, and what its gate measured there), else f32."""
    wanted = model.get_rt_info(FLOAT_PARTS_INFO).astype(str) if model.has_rt_info(FLOAT_PARTS_INFO) else "f32"
    return "bf16" if wanted == "bf16" and not BACKEND.lacks("bf16", cpu_flags()) else "f32"


def _check_device(core: ov.Core, device: str) -> str:
    """Reject a device this machine lacks before compiling, with the ones it has."""
    device = device.upper()
    available = list(core.available_devices)
    if device not in available and device not in {d.split(".")[0] for d in available}:
        raise RtmwEdgeError(f"openvino: device {device!r} is not available; available devices: {', '.join(available)}")
    return device


def _read(core: ov.Core, path: Path) -> ov.Model:
    try:
        return core.read_model(str(path))
    except RuntimeError as exc:
        raise RtmwEdgeError(f"openvino cannot read {path} (is its .bin beside it?): {exc}") from exc


def _free_batch(model: ov.Model, input_name: str, path: Path) -> tuple[int, int, int]:
    """Make the batch axis dynamic so one compiled model takes any N; return the fixed (C, H, W)."""
    shape = model.input(input_name).get_partial_shape()
    if shape.rank.is_dynamic or len(shape) != 4 or not all(d.is_static for d in list(shape)[1:]):
        raise RtmwEdgeError(f"{path}: input {input_name} must be NCHW with fixed C,H,W, got {shape}")
    if shape[0].is_static:
        shape[0] = ov.Dimension(-1)
        model.reshape({input_name: shape})
    return tuple(d.get_length() for d in list(shape)[1:])


def load(path: Path, **options) -> OpenVinoRunner:
    return OpenVinoRunner(path, **options)
