"""Channel equalisation through SiLU: an exact FP32 rewrite that lets one int8 scale per tensor serve every channel.

ONNX Runtime's int8 kernels (QLinearConv, QLinearMul, ...) take one activation scale per tensor. In a trained CSPNeXt
with BatchNorm folded in, the channels of one Conv output differ 100-1000x in range: the weak ones get a few levels
and, read by a depthwise conv that mixes nothing back, become full-scale errors. The rewrite, for every Conv whose
output feeds only a SiLU (Sigmoid + Mul):
- divides output channel c's weights and bias by s_c = max(ymax_c, min(-ymin_c, NEGATIVE_CAP)), measured on the
  calibration inputs (below -6 SiLU is ~0, so a deeper negative side need not fit the range);
- feeds the Sigmoid through a float Mul(y', s), so y' * sigmoid(s * y') = SiLU(y) / s;
- multiplies input channel c of every Conv that reads the result by s_c.
The scales are carried through ops that commute with a positive per-channel scale (Concat on channels, pools,
Resize, Relu, a Mul by an unscaled gate such as channel attention's) and kept equal across a residual Add; a
channel whose scaled tensor reaches any other op (or a graph output) keeps s_c = 1, so the rewrite stays exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

NEGATIVE_CAP = 6.0
CHUNK = 8  # calibration inputs per measuring run
CARRIED = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Resize", "Upsample", "Relu", "Identity"}
EQUALIZE_SUFFIX = "/equalize"


@dataclass(frozen=True)
class Equalized:
    model: object  # onnx.ModelProto, the rewritten graph
    float_nodes: list[str]  # the inserted Muls and the Sigmoids they feed: quantizing them would undo the rewrite
    channels: int  # channels whose scale is not 1


@dataclass(frozen=True)
class _Site:
    conv: object  # onnx NodeProto
    sigmoid: object
    first: int  # index of its channel 0 among all channel variables
    channels: int


def equalize(model, calibration: np.ndarray, input_name: str, progress: bool = False) -> Equalized:
    """The rewritten copy of `model` (an onnx.ModelProto whose shapes infer), measured on `calibration`."""
    import onnx

    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    weights = _own_initializers(graph)
    channels = _channel_counts(graph)
    sites = _sites(graph, weights)
    total = sum(site.channels for site in sites)
    labels, uf = _propagate(graph, sites, channels, total, weights)
    ranges = _measure(model, [site.conv.output[0] for site in sites], calibration, input_name, progress)
    natural = np.concatenate([np.maximum(hi, np.minimum(-lo, NEGATIVE_CAP)) for lo, hi in ranges] or [np.ones(0)])
    natural = np.where(natural > 1e-6, natural, 1.0)
    scales = _class_scales(uf, natural, total)
    _rewrite(graph, weights, sites, labels, scales)
    float_nodes = [name for site in sites if not np.all(scales[site.first:site.first + site.channels] == 1.0)
                   for name in (site.sigmoid.name + EQUALIZE_SUFFIX, site.sigmoid.name)]
    return Equalized(model, float_nodes, int(np.count_nonzero(scales[:total] != 1.0)))


# --------------------------------------------------------------------------------------------- analysis

def _channel_counts(graph) -> dict[str, int]:
    """Axis-1 size of every tensor whose shape inference knows it."""
    counts = {}
    for info in [*graph.value_info, *graph.input, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        if len(dims) >= 2 and dims[1].HasField("dim_value"):
            counts[info.name] = dims[1].dim_value
    for init in graph.initializer:
        if len(init.dims) >= 2:
            counts[init.name] = init.dims[1]
    return counts


def _own_initializers(graph) -> dict:
    """Initializers read by one node only: changing one changes nothing else."""
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    return {init.name: init for init in graph.initializer if uses.get(init.name) == 1}


def _consumers(graph) -> dict[str, list]:
    found: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def _sites(graph, weights: dict) -> list[_Site]:
    """Every Conv (initializer weights) whose output only feeds Sigmoid(y) and Mul(y, Sigmoid(y))."""
    consumers = _consumers(graph)
    outputs = {o.name for o in graph.output}
    sites, first = [], 0
    for conv in graph.node:
        if not _has_own_weights(conv, weights) or conv.output[0] in outputs:
            continue
        readers = consumers.get(conv.output[0], [])
        sigmoid = next((n for n in readers if n.op_type == "Sigmoid"), None)
        if sigmoid is None or len(readers) != 2 or len(consumers.get(sigmoid.output[0], [])) != 1:
            continue
        mul = consumers[sigmoid.output[0]][0]
        if mul.op_type != "Mul" or sorted(mul.input) != sorted([conv.output[0], sigmoid.output[0]]):
            continue
        count = weights[conv.input[1]].dims[0]
        sites.append(_Site(conv, sigmoid, first, count))
        first += count
    return sites


def _has_own_weights(node, weights: dict) -> bool:
    """A Conv whose weights (and bias, if any) are initializers of its own."""
    return node.op_type == "Conv" and len(node.input) >= 2 and all(name in weights for name in node.input[1:])


class _UnionFind:
    """Channel variables joined by residual Adds; variable `one` (the last) stands for a fixed scale of 1."""

    def __init__(self, size: int) -> None:
        self.parent = np.arange(size + 1)
        self.one = size

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the class of `one` keeps `one` as its root
            self.parent[ra if rb == self.one else rb] = rb if rb == self.one else ra

    def fix(self, items: np.ndarray) -> None:
        for item in items:
            self.join(int(item), self.one)


def _propagate(graph, sites: list[_Site], channels: dict[str, int], total: int,
               weights: dict) -> tuple[dict, _UnionFind]:
    """The channel variables each tensor carries (graph order is topological), and their Add-joined classes."""
    uf = _UnionFind(total)
    site_of_mul = {}
    consumers = _consumers(graph)
    for site in sites:
        site_of_mul[consumers[site.sigmoid.output[0]][0].output[0]] = site
    labels: dict[str, np.ndarray] = {}
    for node in graph.node:
        carried = [labels.get(name) for name in node.input]
        if node.output and node.output[0] in site_of_mul:
            site = site_of_mul[node.output[0]]
            labels[node.output[0]] = np.arange(site.first, site.first + site.channels)
        elif all(label is None for label in carried):
            continue
        elif _has_own_weights(node, weights) and carried[0] is not None and all(c is None for c in carried[1:]):
            continue  # absorbed: _rewrite multiplies its input channels
        elif node.op_type in CARRIED and all(c is None for c in carried[1:]) and len(node.output) == 1:
            labels[node.output[0]] = carried[0]
        elif node.op_type == "Concat" and _axis(node) == 1 and all(
                c is not None or name in channels for c, name in zip(carried, node.input, strict=True)):
            labels[node.output[0]] = np.concatenate(
                [c if c is not None else np.full(channels[name], uf.one) for c, name in zip(carried, node.input,
                                                                                            strict=True)])
        elif node.op_type == "Add" and len(carried) == 2 and _both(carried) and len(carried[0]) == len(carried[1]):
            for a, b in zip(*carried, strict=True):
                uf.join(int(a), int(b))
            labels[node.output[0]] = carried[0]
        elif node.op_type == "Mul" and len(carried) == 2 and sum(c is not None for c in carried) == 1:
            labels[node.output[0]] = carried[0] if carried[0] is not None else carried[1]  # times an unscaled gate
        else:
            for label in carried:
                if label is not None:
                    uf.fix(label)
    for output in graph.output:
        if output.name in labels:
            uf.fix(labels[output.name])
    return labels, uf


def _both(carried: list) -> bool:
    return all(c is not None for c in carried)


def _axis(node) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 0)


def _class_scales(uf: _UnionFind, natural: np.ndarray, total: int) -> np.ndarray:
    """One scale per channel variable: the largest natural scale of its class, 1 for the class of `one`."""
    roots = np.array([uf.find(i) for i in range(total + 1)])
    best = np.zeros(total + 1)
    np.maximum.at(best, roots[:total], natural)
    best[roots[uf.one]] = 1.0
    return best[roots]


def _measure(model, names: list[str], calibration: np.ndarray, input_name: str,
             progress: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-channel (min, max) of each named tensor over the calibration inputs."""
    if not names:
        return []
    lows: list = [None] * len(names)
    highs: list = [None] * len(names)
    for outputs in run_with_outputs(model, names, calibration, input_name, progress=progress,
                                    what="equalise channels (measure)"):
        for k, out in enumerate(outputs):
            lo, hi = out.min(axis=(0, *range(2, out.ndim))), out.max(axis=(0, *range(2, out.ndim)))
            lows[k] = lo if lows[k] is None else np.minimum(lows[k], lo)
            highs[k] = hi if highs[k] is None else np.maximum(highs[k], hi)
    return list(zip(lows, highs, strict=True))


def run_with_outputs(model, names: list[str], inputs: np.ndarray, input_name: str, optimize: bool = True,
                     progress: bool = False, what: str = "") -> Iterator[list[np.ndarray]]:
    """The named intermediate tensors of `model` on `inputs`, CHUNK inputs at a time (a float32 reference run;
    `optimize=False` runs a QDQ graph as written: fake-quantized, no int8 kernels)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in known)
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    batch = session.get_inputs()[0].shape[0]
    chunk = batch if isinstance(batch, int) else CHUNK  # a graph exported with a fixed batch takes only that
    for start in tqdm(range(0, len(inputs), chunk), desc=what, disable=not progress, leave=False):
        yield session.run(names, {input_name: inputs[start:start + chunk]})


# --------------------------------------------------------------------------------------------- rewrite

def _rewrite(graph, weights: dict, sites: list[_Site], labels: dict, scales: np.ndarray) -> None:
    from onnx import numpy_helper

    arrays = {}

    def array(node, index: int) -> np.ndarray:
        name = node.input[index]
        if name not in arrays:
            arrays[name] = numpy_helper.to_array(weights[name]).astype(np.float32)
        return arrays[name]

    for node in graph.node:  # consumers: input channel c times s_c
        label = labels.get(node.input[0]) if _has_own_weights(node, weights) else None
        if label is None:
            continue
        weight = array(node, 1)
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        per_group_in, per_group_out = weight.shape[1], weight.shape[0] // groups
        for c, s in enumerate(scales[label]):
            group = c // per_group_in
            weight[group * per_group_out:(group + 1) * per_group_out, c % per_group_in] *= s
    new_nodes = {}
    for site in sites:  # producers: output channel c over s_c, and the Sigmoid fed s * y'
        s = scales[site.first:site.first + site.channels].astype(np.float32)
        if np.all(s == 1.0):
            continue
        weight = array(site.conv, 1)
        weight /= s.reshape(-1, *([1] * (weight.ndim - 1)))
        if len(site.conv.input) < 3:
            bias_name = site.conv.name + "/bias"
            site.conv.input.append(bias_name)
            arrays[bias_name] = np.zeros(site.channels, np.float32)
        array(site.conv, 2)[...] /= s
        new_nodes[site.sigmoid.output[0]] = _scale_node(graph, site, s)
    _store(graph, weights, arrays)
    nodes = []
    for node in graph.node:
        if node.output[0] in new_nodes:
            nodes.append(new_nodes[node.output[0]])
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)


def _scale_node(graph, site: _Site, s: np.ndarray):
    """Mul(y', s) in front of the Sigmoid, which then reads it."""
    from onnx import helper, numpy_helper

    name = site.sigmoid.name + EQUALIZE_SUFFIX
    graph.initializer.append(numpy_helper.from_array(s.reshape(1, -1, 1, 1), f"{name}/scale"))
    node = helper.make_node("Mul", [site.conv.output[0], f"{name}/scale"], [f"{name}/output"], name=name)
    site.sigmoid.input[0] = f"{name}/output"
    return node


def _store(graph, weights: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write the changed arrays back (new biases are added)."""
    from onnx import numpy_helper

    for name, value in arrays.items():
        if name in weights:
            weights[name].CopyFrom(numpy_helper.from_array(value, name))
        else:
            graph.initializer.append(numpy_helper.from_array(value, name))
