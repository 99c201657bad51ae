"""ncnn runner (.param + .bin): ncnn has no batch axis, so a batch is run image by image and restacked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ncnn
import numpy as np

from rtmw_edge.backends import as_batch, select_names
from rtmw_edge.errors import RtmwEdgeError


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
    ) -> None:
        self.path = Path(path)
        text = self.path.read_text(encoding="utf-8", errors="replace")
        if not text.startswith("7767517"):
            raise RtmwEdgeError(f"{self.path} is not an ncnn text .param file (no 7767517 magic)")
        graph = ParamGraph(text)
        self.input_name = select_names(graph.inputs, [input_name] if input_name else None, "input", self.path)[0]
        shape = tuple(input_shape) if input_shape else graph.input_shapes.get(self.input_name)
        if shape is None:
            raise RtmwEdgeError(f"{self.path}: the Input layer has no shape; pass input_shape=(C, H, W)")
        self.input_shape: tuple[int, int, int] = shape
        self.output_names = select_names(graph.outputs, output_names, "output", self.path)
        self._net = _load(self.path, threads, device)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = as_batch(batch, self.input_shape, self.path)
        per_image = [self._run_one(image) for image in batch]
        return [np.stack(outs) for outs in zip(*per_image, strict=True)]

    def _run_one(self, image: np.ndarray) -> list[np.ndarray]:
        # ncnn.Mat wraps `image` without copying: it stays referenced here until extraction is done,
        # and each output is copied out before the extractor frees it.
        mat = ncnn.Mat(image)
        with self._net.create_extractor() as extractor:
            extractor.input(self.input_name, mat)
            outputs = []
            for name in self.output_names:
                status, out = extractor.extract(name)
                if status != 0:
                    raise RtmwEdgeError(f"{self.path}: ncnn failed to compute blob {name} (error {status})")
                outputs.append(np.array(out))
        return outputs


@dataclass(frozen=True)
class ParamLayer:
    """One .param layer line: its type, name, blobs and `key=value` parameters as written."""

    kind: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict[str, str]


class ParamGraph:
    """What a .param text says about the graph: ncnn's Python API can report neither input shapes nor layers."""

    def __init__(self, text: str) -> None:
        lines = [line.split() for line in text.splitlines()[2:] if line.strip()]
        self.layers: list[ParamLayer] = []
        self.inputs: list[str] = []
        self.input_shapes: dict[str, tuple[int, int, int]] = {}
        produced: list[str] = []
        consumed: set[str] = set()
        for fields in lines:
            kind, n_in, n_out = fields[0], int(fields[2]), int(fields[3])
            bottoms, tops = fields[4 : 4 + n_in], fields[4 + n_in : 4 + n_in + n_out]
            consumed.update(bottoms)
            produced.extend(tops)
            params = dict(p.split("=", 1) for p in fields[4 + n_in + n_out :] if "=" in p)
            self.layers.append(ParamLayer(kind, fields[1], tuple(bottoms), tuple(tops), params))
            if kind == "Input":
                self.inputs.append(tops[0])
                shape = _input_shape(fields[4 + n_in + n_out :])
                if shape:
                    self.input_shapes[tops[0]] = shape
        self.outputs = [blob for blob in produced if blob not in consumed]


def _input_shape(params: list[str]) -> tuple[int, int, int] | None:
    """(C, H, W) from an Input layer's `0=w 1=h 2=c`, or None when the layer leaves them out."""
    values = {key: int(value) for key, value in (p.split("=", 1) for p in params) if key in ("0", "1", "2")}
    shape = values.get("2", 1), values.get("1", 0), values.get("0", 0)
    return shape if min(shape) > 0 else None


def _load(path: Path, threads: int | None, device: str | None) -> ncnn.Net:
    weights = path.with_suffix(".bin")
    if not weights.is_file():
        raise RtmwEdgeError(f"{path}: the weights {weights.name} are not beside it")
    net = ncnn.Net()
    if threads:
        net.opt.num_threads = threads
    net.opt.use_vulkan_compute = _wants_vulkan(device)
    # ncnn computes in float16 by default where the CPU can; an artifact's precision names what it stores,
    # and compute stays float32 on every backend, so the three backends give the same keypoints.
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    if net.load_param(str(path)) != 0 or net.load_model(str(weights)) != 0:
        raise RtmwEdgeError(f"ncnn cannot load {path} / {weights.name}")
    return net


def _wants_vulkan(device: str | None) -> bool:
    device = (device or "cpu").lower()
    if device not in ("cpu", "vulkan"):
        raise RtmwEdgeError(f"ncnn: unknown device {device!r}; choose cpu or vulkan")
    if device == "vulkan" and getattr(ncnn, "get_gpu_count", lambda: 0)() == 0:
        raise RtmwEdgeError("ncnn: device 'vulkan' asked for, but ncnn finds no Vulkan GPU")
    return device == "vulkan"
