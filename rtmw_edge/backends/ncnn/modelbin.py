"""ncnn's .bin layout: which bytes each layer's load_model reads, following ncnn's ModelBin (type-0 storage
tags) and each weighted layer's load order, so a quantizer can rewrite one layer and copy every other byte."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtmw_edge.backends.ncnn.param import ParamGraph, ParamLayer
from rtmw_edge.errors import RtmwEdgeError

TAG_INT8 = 0x000D4B38
TAG_FP16 = 0x01306B47
TAG_FP32 = 0x00000000
# ModelBin type-0 storage: tag -> (dtype, bytes per element); any other non-zero tag is a 256-entry codebook
_STORAGE: dict[int, tuple[str, int]] = {TAG_FP32: ("<f4", 4), 0x0002C056: ("<f4", 4), TAG_FP16: ("<f2", 2),
                                         TAG_INT8: ("i1", 1)}


@dataclass(frozen=True)
class Chunk:
    """One ModelBin::load call: `count` elements, `tagged` when a 4-byte storage tag comes first (type 0)."""

    count: int
    tagged: bool = False


@dataclass(frozen=True)
class Read:
    """A chunk as found in the .bin: its bytes [start, end) and its values."""

    start: int
    end: int
    values: np.ndarray


def param_int(layer: ParamLayer, key: str, default: int = 0) -> int:
    return int(layer.params.get(key, default))


@dataclass(frozen=True)
class Quantizable:
    """Where a quantizable layer keeps its sizes, and the int8_scale_term ncnn2int8 gives it."""

    output_key: str
    bias_key: str
    size_key: str
    int8_term: int
    group_key: str | None = None  # depthwise: one weight scale per group

    def channels(self, layer: ParamLayer) -> int:
        """How many weight rows get a scale of their own."""
        return param_int(layer, self.group_key, 1) if self.group_key else param_int(layer, self.output_key)

    def chunks(self, layer: ParamLayer) -> list[Chunk]:
        """weight_data, bias_data, then (INT8 only) weight scales, input scale and the fused-requantize scale."""
        if param_int(layer, "19"):  # dynamic weight: it arrives as a second input, nothing is stored
            return []
        chunks = [Chunk(param_int(layer, self.size_key), tagged=True)]
        if param_int(layer, self.bias_key):
            chunks.append(Chunk(param_int(layer, self.output_key)))
        term = param_int(layer, "8")
        if term:
            # depthwise term 2 stores one weight scale shared by all groups
            shared = self.group_key is not None and term % 100 == 2
            chunks += [Chunk(1 if shared else self.channels(layer)), Chunk(1)]
        if term > 100:
            chunks.append(Chunk(1))
        return chunks


QUANTIZABLE: dict[str, Quantizable] = {
    "Convolution": Quantizable("0", "5", "6", int8_term=2),
    "ConvolutionDepthWise": Quantizable("0", "5", "6", int8_term=1, group_key="7"),
    "InnerProduct": Quantizable("0", "1", "2", int8_term=2),
}


def _gemm_chunks(layer: ParamLayer) -> list[Chunk]:
    """Constant A (M x K), B (N x K) and C (sized by its broadcast type), each type-0 tagged."""
    if param_int(layer, "18"):
        raise RtmwEdgeError(f"layer {layer.name}: Gemm is already quantized (18={param_int(layer, '18')}); "
                            "start from the FP32 model")
    m, n, k = param_int(layer, "7"), param_int(layer, "8"), param_int(layer, "9")
    chunks = [Chunk(m * k, True)] if param_int(layer, "4") else []
    chunks += [Chunk(n * k, True)] if param_int(layer, "5") else []
    c_sizes = {0: 1, 1: m, 2: m, 3: m * n, 4: n}
    broadcast = param_int(layer, "10")
    if param_int(layer, "6") and broadcast != -1:
        chunks.append(Chunk(c_sizes[broadcast], True))
    return chunks


def _memorydata_chunks(layer: ParamLayer) -> list[Chunk]:
    """MemoryData loads w, w*h, w*h*c or w*h*d*c values, typed by 21=load_type (1: raw floats)."""
    w, h, d, c = (param_int(layer, key) for key in ("0", "1", "11", "2"))
    shape = (w, h, d, c) if d else (w, h, c) if c else (w, h) if h else (w,) if w else ()
    return [Chunk(int(np.prod(shape)), tagged=param_int(layer, "21", 1) == 0)] if shape else []


def _affine_pair(size_key: str, affine_key: str) -> Callable[[ParamLayer], list[Chunk]]:
    """Normalisations that store gamma and beta (raw floats) when affine (their default)."""
    return lambda layer: [Chunk(param_int(layer, size_key))] * 2 if param_int(layer, affine_key, 1) else []


_WEIGHTLESS = frozenset({
    "AbsVal", "ArgMax", "BinaryOp", "BNLL", "Cast", "CELU", "Clip", "Concat", "Crop", "CumulativeSum", "Dropout",
    "Eltwise", "ELU", "Erf", "Exp", "ExpandDims", "Flatten", "Flip", "Fold", "GELU", "GLU", "GridSample",
    "HardSigmoid", "HardSwish", "Input", "Interp", "Log", "LRN", "MatMul", "Mish", "Noop", "Packing", "Permute",
    "PixelShuffle", "Pooling", "Pooling1D", "Pooling3D", "Power", "Reduction", "ReLU", "Reorg", "Reshape", "SELU",
    "Shrink", "ShuffleChannel", "Sigmoid", "Slice", "Softmax", "Softplus", "Split", "Squeeze", "Swish", "TanH",
    "Threshold", "Tile", "UnaryOp", "Unfold",
})

# layer type -> the chunks its load_model reads, from its parameters
_LAYOUTS: dict[str, Callable[[ParamLayer], list[Chunk]]] = {
    **{kind: spec.chunks for kind, spec in QUANTIZABLE.items()},
    "Gemm": _gemm_chunks,
    "MemoryData": _memorydata_chunks,
    "BatchNorm": lambda layer: [Chunk(param_int(layer, "0"))] * 4,  # slope, mean, var, bias
    "Scale": lambda layer: ([] if param_int(layer, "0") == -233
                            else [Chunk(param_int(layer, "0"))] * (1 + (param_int(layer, "1") != 0))),
    "PReLU": lambda layer: [Chunk(param_int(layer, "0"))],
    "Padding": lambda layer: [Chunk(param_int(layer, "6"))] if param_int(layer, "6") else [],
    "LayerNorm": _affine_pair("0", "2"),
    "InstanceNorm": _affine_pair("0", "2"),
    "GroupNorm": _affine_pair("1", "3"),
    **dict.fromkeys(_WEIGHTLESS, lambda layer: []),
}


def _chunks(layer: ParamLayer) -> list[Chunk]:
    layout = _LAYOUTS.get(layer.kind)
    if layout is None:
        raise RtmwEdgeError(
            f"layer {layer.name}: ncnn layer type {layer.kind!r} is unknown here, so how many .bin bytes it reads "
            f"is unknown; known weighted types: {', '.join(sorted(set(_LAYOUTS) - _WEIGHTLESS))}")
    return layout(layer)


def _array(data: bytes, dtype: str, count: int, start: int, layer: ParamLayer) -> np.ndarray:
    if count < 0 or start + count * np.dtype(dtype).itemsize > len(data):
        raise RtmwEdgeError(f"layer {layer.name} reads past the end of the .bin: it does not belong to this .param")
    return np.frombuffer(data, dtype, count, start)


def _read_chunk(data: bytes, offset: int, chunk: Chunk, layer: ParamLayer) -> Read:
    if not chunk.tagged:
        return Read(offset, offset + 4 * chunk.count, _array(data, "<f4", chunk.count, offset, layer))
    tag = int.from_bytes(_array(data, "u1", 4, offset, layer).tobytes(), "little")
    start = offset + 4
    if tag not in _STORAGE:  # codebook: 256 floats, then one uint8 index per value
        codebook = _array(data, "<f4", 256, start, layer)
        indices = _array(data, "u1", chunk.count, start + 1024, layer)
        return Read(offset, start + 1024 + _align4(chunk.count), codebook[indices])
    dtype, size = _STORAGE[tag]
    end = start + _align4(chunk.count * size)
    return Read(offset, end, _array(data, dtype, chunk.count, start, layer))


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def read_weights(graph: ParamGraph, bin_path: Path) -> tuple[bytes, dict[str, list[Read]]]:
    """Walk the .bin in layer order as ncnn's load_model calls do; every byte must belong to a layer."""
    data = Path(bin_path).read_bytes()
    offset, reads = 0, {}
    for layer in graph.layers:
        reads[layer.name] = []
        for chunk in _chunks(layer):
            read = _read_chunk(data, offset, chunk, layer)
            reads[layer.name].append(read)
            offset = read.end
    if offset != len(data):
        raise RtmwEdgeError(f"{bin_path}: {len(data) - offset} bytes remain after the last layer's weights; "
                            "the .bin does not belong to this .param")
    return data, reads


def layer_bytes(param: str | os.PathLike, bin: str | os.PathLike) -> dict[str, bytes]:
    """Each layer's slice of the .bin, in param order: shows exactly what a conversion changed."""
    data, reads = read_weights(ParamGraph.read(param), Path(bin))
    return {name: span(data, layer_reads) for name, layer_reads in reads.items()}


def half_weights(param: Path, bin_path: Path, out_bin: Path) -> None:
    """`out_bin`: the .bin with every tagged float32 chunk stored as float16 (ModelBin's fp16 tag, padded to 4
    bytes), as pnnx's fp16=1 writes it; raw chunks (biases, norms) stay float32, which is how ncnn reads them."""
    graph = ParamGraph.read(param)
    data, reads = read_weights(graph, Path(bin_path))
    parts = []
    for layer in graph.layers:
        for chunk, read in zip(_chunks(layer), reads[layer.name], strict=True):
            if chunk.tagged and data[read.start:read.start + 4] == TAG_FP32.to_bytes(4, "little"):
                half = read.values.astype("<f2").tobytes()
                parts += [TAG_FP16.to_bytes(4, "little"), half, bytes(-len(half) % 4)]
            else:
                parts.append(data[read.start:read.end])
    Path(out_bin).write_bytes(b"".join(parts))


def span(data: bytes, reads: list[Read]) -> bytes:
    return data[reads[0].start : reads[-1].end] if reads else b""


def quantizable(graph: ParamGraph) -> list[ParamLayer]:
    """Layers ncnn can run in INT8: convolutions and inner products whose weights are stored in the .bin."""
    layers = [layer for layer in graph.layers if layer.kind in QUANTIZABLE and not param_int(layer, "19")]
    done = [layer.name for layer in layers if param_int(layer, "8")]
    if done:
        raise RtmwEdgeError(f"layers {', '.join(done[:5])} are already INT8; quantize the FP32 model")
    return layers


def quantizable_layers(param: str | os.PathLike) -> list[ParamLayer]:
    """The layers of an FP32 .param that ncnn can run in INT8."""
    return quantizable(ParamGraph.read(param))
