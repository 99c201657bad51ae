"""ONNX -> ncnn .param/.bin through pnnx, with the input shape recorded and each layer's source ONNX node found;
fp16 stores the weights in half precision (the runner computes in fp16 where the CPU can)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from rtmw_edge.backends.base import Network, Written
from rtmw_edge.backends.ncnn.modelbin import half_weights, layer_bytes
from rtmw_edge.backends.ncnn.param import ParamGraph, record_input_shape
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.onnx_io import load_onnx, onnx_io

# pnnx's side outputs, all kept in a scratch folder (never beside the user's file)
_SIDE_FILES = {"pnnxparam": "m.pnnx.param", "pnnxbin": "m.pnnx.bin", "pnnxpy": "m_pnnx.py",
               "pnnxonnx": "m.pnnx.onnx", "ncnnpy": "m_ncnn.py"}
# ncnn weighted layer -> its weight_data_size parameter
WEIGHTED_NCNN = {"Convolution": "6", "ConvolutionDepthWise": "6", "InnerProduct": "2"}
WEIGHTED_ONNX = ("Conv", "Gemm", "MatMul")


def convert(onnx_path: Path, folder: Path, stem: str, precision: str) -> Written:
    executable = pnnx_executable()
    _, output_names, (c, h, w) = onnx_io(onnx_path)
    param = folder.resolve() / f"{stem}.ncnn.param"
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        # pnnx writes `<input>.pnnxsim.onnx` beside its input: give it a copy in the scratch folder
        source = scratch / "m.onnx"
        shutil.copyfile(onnx_path, source)
        args = [executable, str(source), f"inputshape=[1,{c},{h},{w}]", "fp16=0",
                f"ncnnparam={param}", f"ncnnbin={param.with_suffix('.bin')}",
                *(f"{k}={scratch / v}" for k, v in _SIDE_FILES.items())]
        done = subprocess.run(args, cwd=scratch, capture_output=True, text=True)
        if done.returncode != 0 or not param.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RtmwEdgeError(f"pnnx failed to convert {onnx_path.name} to ncnn: {tail[0]}")
    record_input_shape(param, (c, h, w))
    names = source_layer_names(param, onnx_path)  # from the float32 weights, before any halving
    if precision == "fp16":
        half_weights(param, param.with_suffix(".bin"), param.with_suffix(".bin"))
    return Written(param.name, "in0", [f"out{i}" for i in range(len(output_names))], names)


def derive(fp32: Network, folder: Path, stem: str, precision: str) -> Written:
    """The precision's files from the FP32 .param/.bin: the same graph, its weights halved for fp16."""
    param = folder / f"{stem}.ncnn.param"
    shutil.copyfile(fp32.path, param)
    source_bin = fp32.path.with_suffix(".bin")
    if precision == "fp16":
        half_weights(fp32.path, source_bin, param.with_suffix(".bin"))
    else:
        shutil.copyfile(source_bin, param.with_suffix(".bin"))
    return Written(param.name, fp32.input_name, list(fp32.output_names), dict(fp32.layer_names))


def pnnx_executable() -> str:
    """pnnx's own executable, found without importing its Python package: that imports torch, which converting an
    ONNX file does not need (an edge device without torch installs it with `pip install --no-deps pnnx`)."""
    spec = importlib.util.find_spec("pnnx")
    folders = list(spec.submodule_search_locations or []) if spec else []
    found = [Path(f) / name for f in folders for name in ("pnnx", "pnnx.exe") if (Path(f) / name).is_file()]
    if not found:
        raise RtmwEdgeError("pnnx is not installed: pip install pnnx (or, without torch, pip install --no-deps pnnx: "
                            "its executable converts ONNX alone)")
    return str(found[0])


def source_layer_names(param: Path, onnx_path: Path) -> dict[str, str]:
    """ncnn layer -> ONNX node it came from, matched by weights (pnnx renames every layer).

    The fingerprint is the sorted weight values, which survive pnnx's transposes and reshapes exactly in
    fp32; quantization uses it to keep named layer groups in float.
    """
    from onnx import numpy_helper

    model = load_onnx(onnx_path)
    weights = {i.name: i for i in model.graph.initializer}
    by_print = {_fingerprint(numpy_helper.to_array(weights[n.input[1]])): n.name for n in model.graph.node
                if n.op_type in WEIGHTED_ONNX and len(n.input) > 1 and n.input[1] in weights}
    slices = layer_bytes(param, param.with_suffix(".bin"))
    names = {}
    for layer in ParamGraph.read(param).layers:
        if layer.kind in WEIGHTED_NCNN:
            count = int(layer.params[WEIGHTED_NCNN[layer.kind]])
            values = np.frombuffer(slices[layer.name], np.float32, count=count, offset=4)  # after the type flag
            if (source := by_print.get(_fingerprint(values))) is not None:
                names[layer.name] = source
    return names


def _fingerprint(values: np.ndarray) -> bytes:
    return np.sort(values.astype(np.float32).ravel()).tobytes()
