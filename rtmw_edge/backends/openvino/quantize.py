"""OpenVINO INT8: NNCF post-training quantization of the FP32 IR, with NNCF's accuracy control on demand."""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import nncf
import numpy as np
import openvino as ov
from tqdm import tqdm

from rtmw_edge.backends.base import AccuracyControl, KeepFloat, Network, Written, as_batch
from rtmw_edge.backends.openvino.runner import FLOAT_PARTS, FLOAT_PARTS_INFO
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.machine import resolve_auto

AUTO_NAME = re.compile(r"[A-Za-z]+_\d+")
PRESETS = {"mixed": "MIXED", "performance": "PERFORMANCE"}


def quantize(network: Network, calibration: np.ndarray, settings: dict, keep: KeepFloat, folder: Path,
             stem: str, control: AccuracyControl | None = None, progress: bool = False) -> Written:
    """INT8 IR of `network` in `folder`; ops matching `keep` stay float (NNCF ignored scope). NNCF draws its own
    calibration bars; with `progress`, the candidates its accuracy control validates get one too.

    With `control`, NNCF's quantize_with_accuracy_control reverts the most harmful quantizers to float, one
    at a time, until the metric is within the budget or `max_iterations` are spent; those layers are returned.
    """
    nncf.set_log_level(logging.WARNING)  # NNCF reports every op it skips at INFO; our table says what matters
    float_parts = _float_parts(settings)

    model = ov.Core().read_model(str(network.path))
    dataset = nncf.Dataset([sample[None] for sample in calibration])
    arguments = _arguments(settings, keep, len(calibration))
    reverted: list[str] = []
    if control is None:
        quantized = nncf.quantize(model, dataset, advanced_parameters=_advanced(settings), **arguments)
    else:
        quantized, reverted = _with_accuracy_control(model, dataset, calibration[:control.ranking_inputs],
                                                     _advanced(settings), arguments, control, progress)
    _stable_names(quantized)
    quantized.set_rt_info(float_parts, FLOAT_PARTS_INFO)
    path = folder / f"{stem}.xml"
    ov.save_model(quantized, str(path), compress_to_fp16=False)
    return Written(path.name, network.input_name, list(network.output_names), reverted=reverted)


def _float_parts(settings: dict) -> str:
    if settings["float_parts"] not in FLOAT_PARTS:
        raise RtmwEdgeError(f"recipe [quantizer] float_parts must be one of {', '.join(FLOAT_PARTS)}, "
                            f"got {settings['float_parts']!r}")
    return settings["float_parts"]


def _arguments(settings: dict, keep: KeepFloat, available: int) -> dict:
    ignored = None
    if keep.patterns or keep.layers:
        ignored = nncf.IgnoredScope(names=list(keep.layers), patterns=list(keep.patterns), validate=False)
    return {"preset": getattr(nncf.QuantizationPreset, PRESETS[settings["preset"]]),
            "subset_size": min(settings["subset_size"], available),
            "fast_bias_correction": settings["fast_bias_correction"], "ignored_scope": ignored}


def _advanced(settings: dict):
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        OverflowFix,
    )

    overflow = OverflowFix.ENABLE if resolve_auto(settings["overflow_fix"]) else OverflowFix.DISABLE
    advanced = AdvancedQuantizationParameters(overflow_fix=overflow)
    if not settings["smooth_quant"]:
        advanced.smooth_quant_alphas = AdvancedSmoothQuantParameters(convolution=-1, matmul=-1)
    return advanced


def _with_accuracy_control(model, dataset, ranking: np.ndarray, advanced, arguments: dict,
                           control: AccuracyControl, progress: bool):
    """The accuracy-controlled model, and the ops NNCF put back to float (those that no longer read int8)."""
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    inputs = [sample[None] for sample in ranking]
    # NNCF validates the full INT8 model, its FP32 source, then one candidate per reverted quantizer at most
    validated = tqdm(total=control.max_iterations + 2, desc="accuracy control candidates", unit="candidate",
                     disable=not progress, leave=False)

    def validate(compiled, items) -> tuple[float, list[list[np.ndarray]]]:
        validated.update()
        runner = CompiledRunner(compiled)
        # the outputs let NNCF rank quantizers by how far they move them; the metric decides
        return control.validate(runner), [runner.run(item) for item in items]

    with tempfile.TemporaryDirectory() as scratch:
        restorer = AdvancedAccuracyRestorerParameters(max_num_iterations=control.max_iterations,
                                                      intermediate_model_dir=scratch)
        quantized = nncf.quantize_with_accuracy_control(
            model, dataset, nncf.Dataset(inputs), validate, max_drop=control.max_drop,
            drop_type=nncf.DropType.ABSOLUTE, advanced_quantization_parameters=advanced,
            advanced_accuracy_restorer_parameters=restorer, **arguments)
        validated.close()
        fully = next(Path(scratch).glob("*.xml"), None)
        before = _quantized_ops(ov.Core().read_model(str(fully))) if fully else set()
    return quantized, sorted(before - _quantized_ops(quantized))


def _quantized_ops(model) -> set[str]:
    """Ops that read an int8 activation (the consumers of activation FakeQuantize nodes)."""
    return {target.get_node().get_friendly_name()
            for op in model.get_ordered_ops()
            if op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() != "Constant"
            for target in op.output(0).get_target_inputs()}


class CompiledRunner:
    """A Runner over a model NNCF compiled (static batch: run one sample at a time)."""

    backend = "openvino"

    def __init__(self, compiled) -> None:
        self._compiled = compiled
        self.input_name = compiled.input(0).get_any_name()
        self.input_shape = tuple(compiled.input(0).get_partial_shape().get_min_shape())[1:]
        self.output_names = tuple(o.get_any_name() for o in compiled.outputs)
        self.path = Path("<nncf candidate>")

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = as_batch(batch, self.input_shape, self.path)
        results = [self._compiled(sample[None]) for sample in batch]
        return [np.concatenate([r[port] for r in results]) for port in self._compiled.outputs]


def _stable_names(model) -> None:
    """OpenVINO numbers the ops it creates from a process-wide counter; renumber them by position so the
    same inputs give a byte-identical IR in any process."""
    for index, op in enumerate(model.get_ordered_ops()):
        if AUTO_NAME.fullmatch(op.get_friendly_name()):
            op.set_friendly_name(f"{op.get_type_name()}_{index}")
