"""ONNX -> ONNX Runtime: the file itself, optionally with half-precision stored weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from rtmw_edge.backends.base import Network, Written
from rtmw_edge.onnx_io import load_onnx, onnx_io

FP16_MIN_ELEMENTS = 64  # small tensors (biases, scales) stay float32


def convert(onnx_path: Path, folder: Path, stem: str, precision: str) -> Written:
    path = folder / f"{stem}.onnx"
    shutil.copyfile(onnx_path, path)
    if precision == "fp16":
        store_weights_fp16(path)
    input_name, output_names, _ = onnx_io(path)
    return Written(path.name, input_name, output_names)


def derive(fp32: Network, folder: Path, stem: str, precision: str) -> Written:
    """The FP32 artifact is the ONNX file itself: the precision is converted from it as from any ONNX."""
    return convert(fp32.path, folder, stem, precision)


def store_weights_fp16(path: Path) -> None:
    """Half-size file: float weights stored as float16, each cast back to float32 where it is used.

    Compute stays float32 (as OpenVINO's and ncnn's fp16 storage); an engine that computes in float16
    (TensorRT with fp16 on) builds from the same graph.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = load_onnx(path)
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or np.prod(init.dims) < FP16_MIN_ELEMENTS:
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{name}.fp16"))
        casts.append(helper.make_node("Cast", [f"{name}.fp16"], [name], to=TensorProto.FLOAT, name=f"{name}.cast"))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(path))
