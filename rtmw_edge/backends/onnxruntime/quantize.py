"""ONNX Runtime INT8: static QDQ quantization, per-channel int8 weights, uint8 activations.

The steps, each switched by the recipe: channel equalisation through SiLU (equalize.py, an exact FP32 rewrite
that lets ONNX Runtime's one activation scale per tensor serve every channel), QDQ quantization, fast bias
correction (bias_correction.py) and quantizing the corrected graph again. The int8 kernels the session really
runs are then counted on its optimized graph (kernels.py).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rtmw_edge.backends.base import KeepFloat, Network, Written
from rtmw_edge.backends.onnxruntime.bias_correction import correct_biases
from rtmw_edge.backends.onnxruntime.equalize import equalize
from rtmw_edge.backends.onnxruntime.kernels import int8_kernels
from rtmw_edge.errors import RtmwEdgeError, require
from rtmw_edge.machine import resolve_auto
from rtmw_edge.onnx_io import load_onnx

# mean_minmax: MinMax over the mean of each input's own min and max (ONNX Runtime's "moving average"
# computed over one pass), the range NNCF uses for activations; the global extremes let one outlier set the step.
METHODS = {"minmax": "MinMax", "mean_minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
WEIGHTED = ["Conv", "MatMul", "Gemm"]
TYPES = {"quint8": "QUInt8", "qint8": "QInt8"}
MIN_OPSET = 13


def quantize(network: Network, calibration: np.ndarray, settings: dict, keep: KeepFloat, folder: Path,
             stem: str, progress: bool = False) -> Written:
    """INT8 QDQ ONNX of `network` in `folder`; nodes matching `keep` (and depthwise convs with `depthwise_float`)
    stay float, and run float (the runner keeps ONNX Runtime from quantizing them at session time)."""
    q = require("onnxruntime.quantization", "onnxruntime")
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if settings["calibrate_method"] not in METHODS:
        raise RtmwEdgeError(f"unknown calibrate_method {settings['calibrate_method']!r}; choose one of "
                            f"{', '.join(METHODS)}")
    path = folder / f"{stem}.onnx"
    with tempfile.TemporaryDirectory() as scratch:
        source = _with_per_channel_opset(network.path, Path(scratch))
        if settings["preprocess"]:
            prepared = Path(scratch) / "prepared.onnx"
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            source = prepared
        model = load_onnx(source)
        regexes = [re.compile(p) for p in keep.patterns]
        excluded = [n.name for n in model.graph.node if n.name in keep.layers or any(r.search(n.name) for r in regexes)]
        if settings["depthwise_float"]:
            excluded += [n.name for n in model.graph.node if _is_depthwise(n)]
        if settings["equalize"]:
            equalized = equalize(model, calibration, network.input_name, progress)
            model, excluded = equalized.model, excluded + equalized.float_nodes
        corrected = calibration[:settings["bias_correction_inputs"]]
        for step in range(2 if len(corrected) else 1):
            if step:  # the float graph's biases take back the mean shift of the first pass, then quantize again
                correct_biases(model, load_onnx(path), corrected, network.input_name, progress)
            floated = Path(scratch) / "float.onnx"
            onnx.save(model, str(floated))
            reader = _Reader(network.input_name, calibration, progress, "quantize (calibration)" if not step else
                             "quantize again (bias-corrected)")
            _quantize_static(q, floated, path, reader, settings, excluded)
    return Written(path.name, network.input_name, list(network.output_names), int8_kernels=int8_kernels(path))


def _quantize_static(q, source: Path, path: Path, reader: _Reader, settings: dict, excluded: list[str]) -> None:
    q.quantize_static(
        str(source), str(path), reader,
        quant_format=q.QuantFormat.QDQ, per_channel=settings["per_channel"],
        reduce_range=resolve_auto(settings["reduce_range"]),
        activation_type=getattr(q.QuantType, TYPES[settings["activation_type"]]),
        weight_type=getattr(q.QuantType, TYPES[settings["weight_type"]]),
        calibrate_method=getattr(q.CalibrationMethod, METHODS[settings["calibrate_method"]]),
        nodes_to_exclude=excluded, op_types_to_quantize=settings["op_types"] or None,
        extra_options=_extra_options(settings),
    )


def _extra_options(settings: dict) -> dict:
    options = {"CalibPercentile": settings["percentile"],
               "CalibMovingAverage": settings["calibrate_method"] == "mean_minmax"}
    if not settings["quantize_outputs"]:
        # int8 weights and inputs, float outputs: ONNX Runtime then computes those layers in float
        options["OpTypesToExcludeOutputQuantization"] = WEIGHTED
    return options


def _is_depthwise(node) -> bool:
    """A grouped convolution (CSPNeXt's depthwise 5x5/3x3): its input channels span ranges ~100x apart,
    more than one per-tensor activation scale can hold."""
    return node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)


def _with_per_channel_opset(path: Path, scratch: Path) -> Path:
    """Per-channel QDQ needs opset 13 (DequantizeLinear's axis); older graphs (mmdeploy's 11) are converted."""
    import onnx

    model = load_onnx(path)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), MIN_OPSET)
    if opset >= MIN_OPSET:
        return path
    converted = scratch / "opset.onnx"
    onnx.save(onnx.version_converter.convert_version(model, MIN_OPSET), str(converted))
    return converted


class _Reader:
    """Feeds the calibration inputs one at a time (ONNX Runtime's CalibrationDataReader protocol)."""

    def __init__(self, input_name: str, calibration: np.ndarray, progress: bool = False, what: str = "") -> None:
        self._feeds = iter(tqdm([{input_name: sample[None]} for sample in calibration], desc=what, unit="input",
                                disable=not progress, leave=False))

    def get_next(self) -> dict | None:
        return next(self._feeds, None)
