"""ONNX -> the file(s) one backend runs: a copy (optionally fp16-stored) for ONNX Runtime, an IR for
OpenVINO, `.param/.bin` through pnnx for ncnn. Used for pose models and detectors alike."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtmw_edge.errors import RtmwEdgeError, require

FORMATS: dict[str, str] = {"onnx": "onnxruntime", "openvino": "openvino", "ncnn": "ncnn"}
PRECISIONS = ("fp32", "fp16")
FP16_MIN_ELEMENTS = 64  # small tensors (biases, scales) stay float32


@dataclass(frozen=True)
class Written:
    """What a converter wrote: the main file and the blob names the backend knows the network by."""

    main_file: str
    input_name: str
    output_names: list[str]
    layer_names: dict[str, str] = field(default_factory=dict)
    reverted: list[str] = field(default_factory=list)  # layers a quantizer's own accuracy search left float


def backend_of(fmt: str) -> str:
    if fmt not in FORMATS:
        raise RtmwEdgeError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    return FORMATS[fmt]


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise RtmwEdgeError(f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")


def onnx_io(path: Path) -> tuple[str, list[str], tuple[int, int, int]]:
    """Input name, output names and the (C, H, W) input shape of an ONNX file."""
    onnx = require("onnx", "export")
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    (graph_input,) = [i for i in graph.input if i.name not in initializers]
    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    if len(dims) != 4 or not all(dims[1:]):
        raise RtmwEdgeError(f"{path}: input {graph_input.name} must be NCHW with fixed C, H, W (got {dims})")
    return graph_input.name, [o.name for o in graph.output], (dims[1], dims[2], dims[3])


def convert(onnx_path: Path, fmt: str, folder: Path, stem: str, precision: str = "fp32") -> Written:
    """Write `stem`.<ext> for `fmt` into `folder` from an fp32 ONNX file."""
    backend_of(fmt)
    check_precision(precision)
    return CONVERTERS[fmt](Path(onnx_path), Path(folder), stem, precision)


def _to_onnx(onnx_path: Path, folder: Path, stem: str, precision: str) -> Written:
    path = folder / f"{stem}.onnx"
    shutil.copyfile(onnx_path, path)
    if precision == "fp16":
        store_weights_fp16(path)
    input_name, output_names, _ = onnx_io(path)
    return Written(path.name, input_name, output_names)


def store_weights_fp16(path: Path) -> None:
    """Half-size file: float weights stored as float16, each cast back to float32 where it is used.

    Compute stays float32 (as OpenVINO's and ncnn's fp16 storage); an engine that computes in float16
    (TensorRT with fp16 on) builds from the same graph.
    """
    onnx = require("onnx", "export")
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
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


def _to_openvino(onnx_path: Path, folder: Path, stem: str, precision: str) -> Written:
    ov = require("openvino", "openvino")
    path = folder / f"{stem}.xml"
    # save_model compresses weights to fp16 unless told not to
    ov.save_model(ov.convert_model(str(onnx_path)), str(path), compress_to_fp16=precision == "fp16")
    input_name, output_names, _ = onnx_io(onnx_path)
    return Written(path.name, input_name, output_names)


def _to_ncnn(onnx_path: Path, folder: Path, stem: str, precision: str) -> Written:
    pnnx = require("pnnx", "export")
    _, output_names, (c, h, w) = onnx_io(onnx_path)
    param = folder.resolve() / f"{stem}.ncnn.param"
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        side_files = {"pnnxparam": "m.pnnx.param", "pnnxbin": "m.pnnx.bin", "pnnxpy": "m_pnnx.py",
                      "pnnxonnx": "m.pnnx.onnx", "ncnnpy": "m_ncnn.py"}
        args = [pnnx.EXEC_PATH, str(Path(onnx_path).resolve()), f"inputshape=[1,{c},{h},{w}]",
                f"fp16={int(precision == 'fp16')}", f"ncnnparam={param}", f"ncnnbin={param.with_suffix('.bin')}",
                *(f"{k}={scratch / v}" for k, v in side_files.items())]
        done = subprocess.run(args, cwd=scratch, capture_output=True, text=True)
        if done.returncode != 0 or not param.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RtmwEdgeError(f"pnnx failed to convert {onnx_path.name} to ncnn: {tail[0]}")
    _record_input_shape(param, (c, h, w))
    names = source_layer_names(param, onnx_path) if precision == "fp32" else {}
    return Written(param.name, "in0", [f"out{i}" for i in range(len(output_names))], names)


# ncnn weighted layer -> its weight_data_size parameter
WEIGHTED_NCNN = {"Convolution": "6", "ConvolutionDepthWise": "6", "InnerProduct": "2"}
WEIGHTED_ONNX = ("Conv", "Gemm", "MatMul")


def source_layer_names(param: Path, onnx_path: Path) -> dict[str, str]:
    """ncnn layer -> ONNX node it came from, matched by weights (pnnx renames every layer).

    The fingerprint is the sorted weight values, which survive pnnx's transposes and reshapes exactly in
    fp32; quantization uses it to keep named layer groups in float.
    """
    onnx = require("onnx", "export")
    from onnx import numpy_helper

    from rtmw_edge.backends.ncnn import ParamGraph
    from rtmw_edge.quantization.ncnn_int8 import layer_bytes

    model = onnx.load(str(onnx_path))
    weights = {i.name: i for i in model.graph.initializer}
    by_print = {_fingerprint(numpy_helper.to_array(weights[n.input[1]])): n.name for n in model.graph.node
                if n.op_type in WEIGHTED_ONNX and len(n.input) > 1 and n.input[1] in weights}
    slices = layer_bytes(param, param.with_suffix(".bin"))
    names = {}
    for layer in ParamGraph(param.read_text()).layers:
        if layer.kind in WEIGHTED_NCNN:
            count = int(layer.params[WEIGHTED_NCNN[layer.kind]])
            values = np.frombuffer(slices[layer.name], np.float32, count=count, offset=4)  # after the type flag
            if (source := by_print.get(_fingerprint(values))) is not None:
                names[layer.name] = source
    return names


def _fingerprint(values: np.ndarray) -> bytes:
    return np.sort(values.astype(np.float32).ravel()).tobytes()


def _record_input_shape(param: Path, chw: tuple[int, int, int]) -> None:
    """pnnx leaves the ncnn Input layer shapeless; writing w, h, c makes the .param self-describing."""
    lines = param.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.split(maxsplit=1)[0] == "Input":
            lines[i] = f"{line} 0={chw[2]} 1={chw[1]} 2={chw[0]}"
            break
    param.write_text("\n".join(lines) + "\n")


CONVERTERS: dict[str, Callable[[Path, Path, str, str], Written]] = {
    "onnx": _to_onnx, "openvino": _to_openvino, "ncnn": _to_ncnn,
}
