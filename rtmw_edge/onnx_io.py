"""What an ONNX file says about its network: the interchange format every backend converts from."""

from __future__ import annotations

from pathlib import Path

from rtmw_edge.errors import RtmwEdgeError, require


def load_onnx(path: Path, load_external_data: bool = True):
    """The ONNX model in `path`, or one clear line when the file is not an ONNX model at all."""
    onnx = require("onnx", "export")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # protobuf's DecodeError and friends share no base class but Exception
        raise RtmwEdgeError(f"{path} is not an ONNX model ({type(exc).__name__}: {str(exc)[:120] or 'unreadable'})"
                            ) from exc


def onnx_io(path: Path) -> tuple[str, list[str], tuple[int, int, int]]:
    """Input name, output names and the (C, H, W) input shape of an ONNX file."""
    graph = load_onnx(path, load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise RtmwEdgeError(f"{path}: expected one image input, found {len(inputs)} inputs")
    (graph_input,) = inputs
    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    if len(dims) != 4 or not all(dims[1:]):
        raise RtmwEdgeError(f"{path}: input {graph_input.name} must be NCHW with fixed C, H, W (got {dims})")
    return graph_input.name, [o.name for o in graph.output], (dims[1], dims[2], dims[3])
