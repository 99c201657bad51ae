"""ncnn runner (.param + .bin): ncnn has no batch axis, so a batch is run image by image and restacked. Given
pixels, ncnn's own `from_pixels` converts and normalises each crop (6x faster than numpy's pass, measured on x86)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ncnn
import numpy as np

from rtmw_edge.backends.base import as_batch, as_pixels, select_names
from rtmw_edge.backends.ncnn import BACKEND
from rtmw_edge.backends.ncnn.net import load_net
from rtmw_edge.backends.ncnn.param import ParamGraph, param_text
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.machine import cpu_flags


class NcnnRunner:
    """An ncnn network; outputs get back the leading batch axis ncnn drops, so they match ONNX's shapes."""

    backend = "ncnn"

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        device: str | None = None,
        input_name: str | None = None,
        output_names: Sequence[str] | None = None,
        input_shape: tuple[int, int, int] | None = None,
        precision: str = "fp32",
    ) -> None:
        self.path = Path(path)
        graph = ParamGraph(param_text(self.path))
        self.input_name = select_names(graph.inputs, [input_name] if input_name else None, "input", self.path)[0]
        shape = tuple(input_shape) if input_shape else graph.input_shapes.get(self.input_name)
        if shape is None:
            raise RtmwEdgeError(f"{self.path}: the Input layer has no shape; pass input_shape=(C, H, W)")
        self.input_shape: tuple[int, int, int] = shape
        self.output_names = select_names(graph.outputs, output_names, "output", self.path)
        vulkan = _wants_vulkan(device)
        if not vulkan and (reason := BACKEND.lacks(precision, cpu_flags())):
            raise RtmwEdgeError(f"{self.path}: {reason}")
        self._net = load_net(self.path, self.path.with_suffix(".bin"), threads, vulkan=vulkan,
                             fp16=BACKEND.computes(precision) == "fp16")

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = as_batch(batch, self.input_shape, self.path)
        # ncnn.Mat wraps each image without copying: `batch` stays referenced here until extraction is done
        return _stacked([self._run_one(ncnn.Mat(image)) for image in batch])

    def run_pixels(self, pixels: np.ndarray, mean_rgb: Sequence[float], std_rgb: Sequence[float]) -> list[np.ndarray]:
        height, width = self.input_shape[1:]
        mean, norm = list(mean_rgb), [1.0 / s for s in std_rgb]
        outputs = []
        for crop in as_pixels(pixels, self.input_shape, self.path):
            mat = ncnn.Mat.from_pixels(crop, ncnn.Mat.PixelType.PIXEL_BGR2RGB, width, height)  # a float copy
            mat.substract_mean_normalize(mean, norm)
            outputs.append(self._run_one(mat))
        return _stacked(outputs)

    def _run_one(self, mat: ncnn.Mat) -> list[np.ndarray]:
        # each output is copied out before the extractor frees it
        with self._net.create_extractor() as extractor:
            extractor.input(self.input_name, mat)
            outputs = []
            for name in self.output_names:
                status, out = extractor.extract(name)
                if status != 0:
                    raise RtmwEdgeError(f"{self.path}: ncnn failed to compute blob {name} (error {status})")
                outputs.append(np.array(out))
        return outputs


def _stacked(per_image: list[list[np.ndarray]]) -> list[np.ndarray]:
    return [np.stack(outs) for outs in zip(*per_image, strict=True)]


def _wants_vulkan(device: str | None) -> bool:
    device = (device or "cpu").lower()
    if device not in ("cpu", "vulkan"):
        raise RtmwEdgeError(f"ncnn: unknown device {device!r}; choose cpu or vulkan")
    if device == "vulkan" and getattr(ncnn, "get_gpu_count", lambda: 0)() == 0:
        raise RtmwEdgeError("ncnn: device 'vulkan' asked for, but ncnn finds no Vulkan GPU")
    return device == "vulkan"


def load(path: Path, **options) -> NcnnRunner:
    return NcnnRunner(path, **options)
