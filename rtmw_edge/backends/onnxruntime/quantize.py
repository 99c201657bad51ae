"""ONNX Runtime INT8: static QDQ quantization, per-channel int8 weights, uint8 activations."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rtmw_edge.backends.base import KeepFloat, Network, Written
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
    """INT8 QDQ ONNX of `network` in `folder`; nodes matching `keep` stay float; `progress`: a calibration bar."""
    q = require("onnxruntime.quantization", "onnxruntime")
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
        graph = load_onnx(source, load_external_data=False).graph
        regexes = [re.compile(p) for p in keep.patterns]
        excluded = [n.name for n in graph.node if n.name in keep.layers or any(r.search(n.name) for r in regexes)]
        if settings["depthwise_float"]:
            excluded += [n.name for n in graph.node if _is_depthwise(n)]
        q.quantize_static(
            str(source), str(path), _Reader(network.input_name, calibration, progress),
            quant_format=q.QuantFormat.QDQ, per_channel=settings["per_channel"],
            reduce_range=resolve_auto(settings["reduce_range"]),
            activation_type=getattr(q.QuantType, TYPES[settings["activation_type"]]),
            weight_type=getattr(q.QuantType, TYPES[settings["weight_type"]]),
            calibrate_method=getattr(q.CalibrationMethod, METHODS[settings["calibrate_method"]]),
            nodes_to_exclude=excluded, op_types_to_quantize=settings["op_types"] or None,
            extra_options=_extra_options(settings),
        )
    return Written(path.name, network.input_name, list(network.output_names))


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

    def __init__(self, input_name: str, calibration: np.ndarray, progress: bool = False) -> None:
        feeds = [{input_name: sample[None]} for sample in calibration]
        self._feeds = iter(tqdm(feeds, desc="onnxruntime calibration", unit="input", disable=not progress))

    def get_next(self) -> dict | None:
        return next(self._feeds, None)
