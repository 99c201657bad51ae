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


# ops between a detector's decoded boxes / scores and its NonMaxSuppression that only select, reorder or reshape
_SELECTING = {"Gather", "GatherElements", "GatherND", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity",
              "Flatten", "Cast"}
NMS_FREE_OUTPUTS = ("boxes", "scores")  # what `without_nms` gives: [B,M,4] and [B,M,C]


def without_nms(path: Path, out: Path) -> bool:
    """Write to `out` the network of `path` cut before its NonMaxSuppression (an mmdeploy end-to-end detector),
    with outputs `boxes` [B,M,4] (x1, y1, x2, y2 in input pixels) and `scores` [B,M,C]; False when it has none.

    The NMS (with its top-k) is the one part of such a graph that ncnn cannot run and that only selects: the
    boxes and scores it selects from are found by walking back from its inputs through selecting ops (mmdeploy's
    pre-NMS top-k, the scores' transpose), and the caller runs NMS (`Detector` always does).
    """
    onnx = require("onnx", "export")
    from onnx import helper, shape_inference

    model = load_onnx(path)
    graph = model.graph
    nms = [node for node in graph.node if node.op_type == "NonMaxSuppression"]
    if not nms:
        return False
    shapes = _shapes(shape_inference.infer_shapes(model))
    producer = {name: node for node in graph.node for name in node.output}
    boxes, scores = (_before_selection(name, producer) for name in nms[0].input[:2])
    box_shape, score_shape = shapes.get(boxes), shapes.get(scores)
    if box_shape is None or score_shape is None or len(box_shape) != 3 or box_shape[2] != 4 or len(score_shape) != 3:
        raise RtmwEdgeError(f"{path}: cannot find the boxes [B,N,4] and scores its NonMaxSuppression selects from "
                            f"(found {boxes} {box_shape}, {scores} {score_shape})")
    transposed = score_shape[1] != box_shape[1]  # [B,C,N]
    kept = [node for node in graph.node if id(node) in _ancestors([boxes, scores], producer)]
    # free the output names: a tensor of the graph may already be called so
    for node in kept:
        for names in (node.input, node.output):
            names[:] = [f"{n}_before_nms" if n in NMS_FREE_OUTPUTS else n for n in names]
    boxes, scores = (f"{n}_before_nms" if n in NMS_FREE_OUTPUTS else n for n in (boxes, scores))
    outputs = [helper.make_node("Identity", [boxes], ["boxes"]),
               helper.make_node("Transpose", [scores], ["scores"], perm=[0, 2, 1]) if transposed
               else helper.make_node("Identity", [scores], ["scores"])]
    kept += outputs
    used = {name for node in kept for name in node.input}
    cut = helper.make_graph(
        kept, graph.name, list(graph.input), [
            helper.make_tensor_value_info("boxes", onnx.TensorProto.FLOAT, box_shape),
            helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT,
                                          [score_shape[0], score_shape[2], score_shape[1]] if transposed
                                          else score_shape)],
        [init for init in graph.initializer if init.name in used])
    result = helper.make_model(cut, opset_imports=model.opset_import, ir_version=model.ir_version)
    onnx.checker.check_model(result)
    onnx.save(result, str(out))
    return True


def _shapes(model) -> dict[str, list[int | str]]:
    """Every tensor's shape that shape inference could give (a dimension it cannot fix is its symbol)."""
    infos = [*model.graph.value_info, *model.graph.output, *model.graph.input]
    return {info.name: [d.dim_value or d.dim_param for d in info.type.tensor_type.shape.dim] for info in infos}


def _before_selection(name: str, producer: dict) -> str:
    """The tensor `name` was selected from: up through selecting ops, following their data input."""
    while name in producer and producer[name].op_type in _SELECTING:
        name = producer[name].input[0]
    return name


def _ancestors(names: list[str], producer: dict) -> set[int]:
    """The nodes (by id) these tensors are computed from."""
    found: set[int] = set()
    stack = list(names)
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in found:
            found.add(id(node))
            stack.extend(node.input)
    return found
