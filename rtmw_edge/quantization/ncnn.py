"""ncnn INT8: the project's ncnn2table + ncnn2int8 (ncnn_int8.py) on the FP32 .param/.bin.

Which layers stay float is decided by layer type (recipe: depthwise convolutions, whose channels span
ranges one per-tensor scale cannot cover), by layer group, through the ncnn-layer -> ONNX-node names
recorded in the FP32 artifact at export, and by layer name (what the gate's layer search reverts).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from rtmw_edge.artifact import Artifact
from rtmw_edge.backends.ncnn import NcnnRunner, ParamGraph
from rtmw_edge.convert import Written
from rtmw_edge.quantization.groups import LAYER_GROUPS, names_in
from rtmw_edge.quantization.ncnn_int8 import (
    Int8Table,
    activation_scales,
    quantizable_layers,
    quantize_ncnn,
    weight_scales,
    write_int8,
)

RANKING_INPUTS = 8  # calibration inputs that measure each layer's error


def quantize(fp32: Artifact, calibration: np.ndarray, settings: dict, keep_float: list[str], folder: Path,
             stem: str) -> Written:
    """INT8 .param/.bin of `fp32` in `folder`; the `keep_float` groups or layers and types stay float."""
    param = fp32.main_path
    out_param = folder / param.name
    quantize_ncnn(param, param.with_suffix(".bin"), calibration, out_param, out_param.with_suffix(".bin"),
                  method=settings["method"], keep_float=_kept(fp32, settings, keep_float))
    return Written(out_param.name, fp32.meta.input_name, list(fp32.meta.output_names))


def rank_layers(fp32: Artifact, calibration: np.ndarray, settings: dict) -> list[str]:
    """Quantizable layers that the recipe leaves in int8, most harmful first.

    Each layer alone is written in int8 (all others float) and its relative output error on a few
    calibration inputs measured: one table serves every trial, so this takes seconds on a detector.
    """
    param, weights = fp32.main_path, fp32.main_path.with_suffix(".bin")
    table = Int8Table(weight_scales(param, weights), activation_scales(param, weights, calibration,
                                                                      settings["method"]))
    every = {layer.name for layer in quantizable_layers(param)}
    candidates = sorted(every - _kept(fp32, settings, []))
    inputs = calibration[:RANKING_INPUTS]
    reference = NcnnRunner(param, threads=1).run(inputs)
    errors = {}
    with tempfile.TemporaryDirectory() as scratch:
        trial = Path(scratch) / "trial.param"
        for layer in candidates:
            write_int8(param, weights, table, trial, trial.with_suffix(".bin"), every - {layer}, overwrite=True)
            outputs = NcnnRunner(trial, threads=1).run(inputs)
            errors[layer] = sum(float(np.linalg.norm(o - r) / np.linalg.norm(r))
                                for o, r in zip(outputs, reference, strict=True))
    return sorted(candidates, key=lambda name: -errors[name])


def _kept(fp32: Artifact, settings: dict, keep_float: list[str]) -> set[str]:
    groups = [k for k in keep_float if k in LAYER_GROUPS]
    layers = {k for k in keep_float if k not in LAYER_GROUPS}
    return _layers_of_types(fp32.main_path, settings["keep_float_types"]) | _layers_in_groups(fp32, groups) | layers


def _layers_of_types(param: Path, kinds: list[str]) -> set[str]:
    return {layer.name for layer in ParamGraph(param.read_text()).layers if layer.kind in kinds}


def _layers_in_groups(fp32: Artifact, groups: list[str]) -> set[str]:
    """ncnn layers whose source ONNX node (module path) falls in `groups`."""
    sources = fp32.meta.layer_names
    wanted = set(names_in(groups, list(sources.values())))
    return {layer for layer, source in sources.items() if source in wanted}
