"""ncnn INT8: the project's ncnn2table + ncnn2int8 (ncnn_int8.py) on the FP32 .param/.bin.

Which layers stay float is decided by layer type (recipe: depthwise convolutions, whose channels span
ranges one per-tensor scale cannot cover) and by layer group, through the ncnn-layer -> ONNX-node names
recorded in the FP32 artifact at export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtmw_edge.artifact import Artifact
from rtmw_edge.backends.ncnn import ParamGraph
from rtmw_edge.convert import Written
from rtmw_edge.quantization.groups import names_in
from rtmw_edge.quantization.ncnn_int8 import quantize_ncnn


def quantize(fp32: Artifact, calibration: np.ndarray, settings: dict, keep_float: list[str], folder: Path,
             stem: str) -> Written:
    """INT8 .param/.bin of `fp32` in `folder`; layers of `keep_float` groups and types stay float."""
    param = fp32.main_path
    out_param = folder / param.name
    keep = _layers_of_types(param, settings["keep_float_types"]) | _layers_in_groups(fp32, keep_float)
    quantize_ncnn(param, param.with_suffix(".bin"), calibration, out_param, out_param.with_suffix(".bin"),
                  method=settings["method"], keep_float=keep)
    return Written(out_param.name, fp32.meta.input_name, list(fp32.meta.output_names))


def _layers_of_types(param: Path, kinds: list[str]) -> set[str]:
    return {layer.name for layer in ParamGraph(param.read_text()).layers if layer.kind in kinds}


def _layers_in_groups(fp32: Artifact, groups: list[str]) -> set[str]:
    """ncnn layers whose source ONNX node (module path) falls in `groups`."""
    sources = fp32.meta.layer_names
    wanted = set(names_in(groups, list(sources.values())))
    return {layer for layer, source in sources.items() if source in wanted}
