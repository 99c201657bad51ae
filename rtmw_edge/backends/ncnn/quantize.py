"""ncnn INT8: our ncnn2table + ncnn2int8 (int8.py) on the FP32 .param/.bin.

Which layers stay float is decided by layer type (recipe: depthwise convolutions, whose channels span
ranges one per-tensor scale cannot cover), by source-node pattern through the ncnn-layer -> ONNX-node names
recorded at export, and by layer name (what the gate's layer search reverts).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rtmw_edge.backends.base import KeepFloat, Network, Written
from rtmw_edge.backends.ncnn.int8 import Int8Table, activation_scales, quantize_ncnn, weight_scales, write_int8
from rtmw_edge.backends.ncnn.modelbin import quantizable_layers
from rtmw_edge.backends.ncnn.param import ParamGraph
from rtmw_edge.backends.ncnn.runner import NcnnRunner


def quantize(network: Network, calibration: np.ndarray, settings: dict, keep: KeepFloat, folder: Path,
             stem: str, progress: bool = False) -> Written:
    """INT8 .param/.bin of `network` in `folder`; what `keep` and the recipe's layer types name stays float."""
    param = network.path
    out_param = folder / param.name
    quantize_ncnn(param, param.with_suffix(".bin"), calibration, out_param, out_param.with_suffix(".bin"),
                  method=settings["method"], keep_float=_kept(network, settings, keep), progress=progress)
    return Written(out_param.name, network.input_name, list(network.output_names))


def rank_layers(network: Network, calibration: np.ndarray, settings: dict, progress: bool = False) -> list[str]:
    """Quantizable layers that the recipe leaves in int8, most harmful first.

    Each layer alone is written in int8 (all others float) and its relative output error on the recipe's
    `ranking_inputs` calibration inputs measured: one table serves every trial, so this takes seconds on a
    detector.
    """
    param, weights = network.path, network.path.with_suffix(".bin")
    table = Int8Table(weight_scales(param, weights), activation_scales(param, weights, calibration,
                                                                      settings["method"], progress=progress))
    every = {layer.name for layer in quantizable_layers(param)}
    candidates = sorted(every - _kept(network, settings, KeepFloat()))
    inputs = calibration[: settings["ranking_inputs"]]
    reference = NcnnRunner(param, threads=1).run(inputs)
    errors = {}
    with tempfile.TemporaryDirectory() as scratch:
        trial = Path(scratch) / "trial.param"
        for layer in tqdm(candidates, desc="ncnn layer ranking", unit="layer", disable=not progress, leave=False):
            write_int8(param, weights, table, trial, trial.with_suffix(".bin"), every - {layer}, overwrite=True)
            outputs = NcnnRunner(trial, threads=1).run(inputs)
            errors[layer] = sum(float(np.linalg.norm(o - r) / np.linalg.norm(r))
                                for o, r in zip(outputs, reference, strict=True))
    return sorted(candidates, key=lambda name: -errors[name])


def _kept(network: Network, settings: dict, keep: KeepFloat) -> set[str]:
    kinds = set(settings["keep_float_types"])
    by_type = {layer.name for layer in ParamGraph.read(network.path).layers if layer.kind in kinds}
    regexes = [re.compile(p) for p in keep.patterns]
    by_source = {layer for layer, source in network.layer_names.items() if any(r.search(source) for r in regexes)}
    return by_type | by_source | set(keep.layers)
