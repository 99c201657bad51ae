"""Fast bias correction: int8 rounding shifts each convolution's output mean; the float bias takes the shift back.

Each Conv is measured alone: its QDQ form (QuantizeLinear -> DequantizeLinear of its input, its dequantized int8
weights) is grafted onto the float graph so that it reads the FP32 input, and the per-channel mean of the FP32
output minus the grafted output over the first calibration inputs is added to its float bias. Quantizing the
corrected graph again then rounds around the right mean. (Measuring every Conv inside the quantized graph
instead would count each shift again in every layer below it: corrected together, they overshoot.)
"""

from __future__ import annotations

import numpy as np

from rtmw_edge.backends.onnxruntime.equalize import run_with_outputs

GRAFT = "/bias_correction"


def correct_biases(float_model, quantized_model, inputs: np.ndarray, input_name: str, progress: bool = False) -> int:
    """Add each quantized Conv's mean output shift to its bias in `float_model` (changed in place); returns how many
    Convs were corrected."""
    from onnx import numpy_helper

    graph = float_model.graph
    initializers = {init.name: init for init in graph.initializer}
    names = {n.output[0]: n for n in graph.node if n.op_type == "Conv" and (len(n.input) < 3 or n.input[2] in
                                                                            initializers)}
    probe, grafted = _grafted(float_model, quantized_model, set(names))
    if not grafted:
        return 0
    means = _channel_means(probe, [*grafted, *(f"{n}{GRAFT}" for n in grafted)], inputs, input_name, progress)
    for k, name in enumerate(grafted):
        conv = names[name]
        shift = (means[k] - means[len(grafted) + k]).astype(np.float32)
        if len(conv.input) < 3:
            conv.input.append(conv.name + "/bias")
            graph.initializer.append(numpy_helper.from_array(shift, conv.input[2]))
            continue
        bias = initializers[conv.input[2]]
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + shift, bias.name))
    return len(grafted)


def _grafted(float_model, quantized_model, convs: set[str]):
    """A copy of the float graph with every quantized Conv of `convs` (by output name) grafted beside its float
    twin, reading the float input; and the output names of those Convs."""
    import onnx

    qgraph = quantized_model.graph
    producer = {out: node for node in qgraph.node for out in node.output}
    qinits = {init.name: init for init in qgraph.initializer}
    probe = onnx.ModelProto()
    probe.CopyFrom(float_model)
    known = {init.name for init in probe.graph.initializer}
    copied: set[str] = set()  # a QuantizeLinear shared by two Convs is grafted once
    grafted = []
    for conv in qgraph.node:
        data = producer.get(conv.input[0]) if conv.op_type == "Conv" else None
        if conv.output[0] not in convs or data is None or data.op_type != "DequantizeLinear":
            continue
        quantize = producer.get(data.input[0])
        if quantize is None or quantize.op_type != "QuantizeLinear":
            continue
        nodes = [quantize, data, *(producer[n] for n in conv.input[1:] if n in producer), conv]
        renamed = {out for node in nodes for out in node.output}
        for node in nodes:
            if node.name in copied:
                continue
            copied.add(node.name)
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = node.name + GRAFT
            for i, name in enumerate(copy.input):
                if name in renamed:
                    copy.input[i] = name + GRAFT
                elif name in qinits and name not in known:
                    probe.graph.initializer.append(qinits[name])
                    known.add(name)
            for i, name in enumerate(copy.output):
                copy.output[i] = name + GRAFT
            probe.graph.node.append(copy)
        grafted.append(conv.output[0])
    return probe, grafted


def _channel_means(model, names: list[str], inputs: np.ndarray, input_name: str, progress: bool) -> list[np.ndarray]:
    sums: list = [0.0] * len(names)
    counts = [0] * len(names)
    for outputs in run_with_outputs(model, names, inputs, input_name, optimize=False, progress=progress,
                                    what="bias correction (measure)"):
        for k, out in enumerate(outputs):
            sums[k] = sums[k] + out.astype(np.float64).sum(axis=(0, *range(2, out.ndim)))
            counts[k] += out.size // out.shape[1]
    return [s / n for s, n in zip(sums, counts, strict=True)]
