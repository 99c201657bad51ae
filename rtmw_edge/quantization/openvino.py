"""OpenVINO INT8: NNCF post-training quantization of the FP32 IR."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from rtmw_edge.artifact import Artifact
from rtmw_edge.convert import Written
from rtmw_edge.errors import require
from rtmw_edge.quantization.cpu import resolve_auto
from rtmw_edge.quantization.groups import patterns

AUTO_NAME = re.compile(r"[A-Za-z]+_\d+")
PRESETS = {"mixed": "MIXED", "performance": "PERFORMANCE"}


def quantize(fp32: Artifact, calibration: np.ndarray, settings: dict, keep_float: list[str], folder: Path,
             stem: str) -> Written:
    """INT8 IR of `fp32` in `folder`; groups in `keep_float` stay float (NNCF ignored scope)."""
    ov = require("openvino", "openvino")
    nncf = require("nncf", "openvino")
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        OverflowFix,
    )

    nncf.set_log_level(logging.WARNING)  # NNCF reports every op it skips at INFO; our table says what matters

    model = ov.Core().read_model(str(fp32.main_path))
    overflow = OverflowFix.ENABLE if resolve_auto(settings["overflow_fix"]) else OverflowFix.DISABLE
    advanced = AdvancedQuantizationParameters(overflow_fix=overflow)
    if not settings["smooth_quant"]:
        advanced.smooth_quant_alphas = AdvancedSmoothQuantParameters(convolution=-1, matmul=-1)
    ignored = nncf.IgnoredScope(patterns=patterns(keep_float), validate=False) if keep_float else None
    quantized = nncf.quantize(
        model, nncf.Dataset([sample[None] for sample in calibration]),
        preset=getattr(nncf.QuantizationPreset, PRESETS[settings["preset"]]),
        subset_size=min(settings["subset_size"], len(calibration)),
        fast_bias_correction=settings["fast_bias_correction"], ignored_scope=ignored,
        advanced_parameters=advanced,
    )
    _stable_names(quantized)
    path = folder / f"{stem}.xml"
    ov.save_model(quantized, str(path), compress_to_fp16=False)
    return Written(path.name, fp32.meta.input_name, list(fp32.meta.output_names))


def _stable_names(model) -> None:
    """OpenVINO numbers the ops it creates from a process-wide counter; renumber them by position so the
    same inputs give a byte-identical IR in any process."""
    for index, op in enumerate(model.get_ordered_ops()):
        if AUTO_NAME.fullmatch(op.get_friendly_name()):
            op.set_friendly_name(f"{op.get_type_name()}_{index}")
