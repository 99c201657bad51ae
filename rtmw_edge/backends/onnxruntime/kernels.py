"""What ONNX Runtime really runs: the int8 kernels of a QDQ graph after the session's optimizations.

A QDQ file says what the quantizer meant; the session decides what runs (it fuses DequantizeLinear -> Conv ->
QuantizeLinear into QLinearConv, or computes in float where it cannot). The graph the session writes through
`optimized_model_filepath` is the truth the record counts.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from pathlib import Path

from rtmw_edge.backends.onnxruntime.runner import new_session
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.onnx_io import load_onnx

INT8_KERNEL = re.compile(r"^(QLinear\w+|QGemm|ConvInteger|MatMulInteger\w*|DynamicQuantize\w*)$")
WEIGHTED = ("Conv", "MatMul", "Gemm")
WEIGHTED_INT8 = ("QLinearConv", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat")


def optimized_ops(path: Path) -> Counter:
    """Op types of the graph the CPU session runs, and how many of each."""
    with tempfile.TemporaryDirectory() as scratch:
        optimized = Path(scratch) / "optimized.onnx"
        new_session(path, threads=1, optimized_path=optimized)
        return Counter(node.op_type for node in load_onnx(optimized).graph.node)


def int8_kernels(path: Path) -> dict[str, int]:
    """The int8 kernels (QLinearConv, QLinearMul, ...) of the optimized graph, by op type; checks that no more
    weighted ones run than the file has nodes with int8 weights, so a node the quantizer left float runs float
    (fewer may: a Conv whose output is not quantized is computed in float)."""
    ops = optimized_ops(path)
    kernels = {op: count for op, count in sorted(ops.items()) if INT8_KERNEL.match(op)}
    fused = sum(kernels.get(op, 0) for op in WEIGHTED_INT8)
    quantized = _int8_weighted_nodes(path)
    if fused > quantized:
        raise RtmwEdgeError(f"{path}: ONNX Runtime runs {fused} int8 Conv/MatMul/Gemm kernels where the file "
                            f"quantizes {quantized}: a node left float would run in int8")
    return kernels


def _int8_weighted_nodes(path: Path) -> int:
    """Conv/MatMul/Gemm nodes whose weight input comes through DequantizeLinear."""
    graph = load_onnx(path).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    return sum(1 for node in graph.node if node.op_type in WEIGHTED and len(node.input) > 1
               and node.input[0] in dequantized and node.input[1] in dequantized)
