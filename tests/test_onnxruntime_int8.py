"""ONNX Runtime INT8 on the trained detector: exact channel equalisation, nodes kept float that run float, int8
kernels that really run, and box AP kept when calibrated on images other than those it is judged on."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from oracle import MINI_DIR, MODELS_DIR, need

from rtmw_edge.backends import get_backend
from rtmw_edge.backends.base import KeepFloat, Network
from rtmw_edge.backends.onnxruntime.equalize import equalize, run_with_outputs
from rtmw_edge.backends.onnxruntime.kernels import int8_kernels, optimized_ops
from rtmw_edge.detector import open_detector
from rtmw_edge.evaluation.boxes import detector_ap
from rtmw_edge.evaluation.ground_truth import GroundTruthSet
from rtmw_edge.quantization.calibration import detector_calibration
from rtmw_edge.quantization.recipe import load_recipe

DEPTHWISE_CONVS = 41  # of RTMDet-nano's 123


@pytest.fixture(scope="module")
def detector() -> Network:
    return Network(need(MODELS_DIR / "rtmdet-nano.onnx"), "images", ("1211", "1213", "1215"))


def frames(size: int) -> np.ndarray:
    """Scenes composed from the shipped photos: never the images the detector is judged on."""
    return detector_calibration(None, (320, 320), size=size, seed=0, scenes=True).inputs


def tensors(model, names: list[str], inputs: np.ndarray) -> list[np.ndarray]:
    """The named tensors of `model` over all `inputs`."""
    return [np.concatenate(parts) for parts in zip(*run_with_outputs(model, names, inputs, "images"), strict=True)]


def settings(**changes) -> dict:
    recipe = load_recipe("onnxruntime")
    return {**recipe.quantizer, **recipe.detector.quantizer, **changes}


def test_channel_equalisation_is_exact_and_gives_every_silu_conv_one_range(detector):
    model, inputs = onnx.load(detector.path), frames(8)
    equalized = equalize(model, inputs, detector.input_name)
    outputs = list(detector.output_names)
    before, after = (tensors(m, outputs, inputs) for m in (model, equalized.model))
    for b, a in zip(before, after, strict=True):  # equal up to float32 rounding: above 80 dB (int8 is ~40)
        assert 10 * np.log10(np.sum(b.astype(np.float64) ** 2) / np.sum((a - b).astype(np.float64) ** 2)) > 80
    assert equalized.channels > 4000 and len(equalized.float_nodes) == 2 * 113  # every Conv -> SiLU, Mul + Sigmoid
    convs = [n.input[0] for n in equalized.model.graph.node if n.name.endswith("/equalize")][:20]
    # each channel's positive range is now at most 1
    assert max(float(t.max()) for t in tensors(equalized.model, convs, inputs)) <= 1.0 + 1e-4


def test_depthwise_float_stays_float_in_the_graph_onnxruntime_runs(detector, tmp_path):
    written = get_backend("onnxruntime").quantize(
        detector, frames(4), settings(depthwise_float=True, equalize=False, bias_correction_inputs=0), KeepFloat(),
        tmp_path, "det")
    path = tmp_path / written.main_file
    assert written.int8_kernels["QLinearConv"] == 123 - DEPTHWISE_CONVS
    assert optimized_ops(path)["QLinearConv"] == 123 - DEPTHWISE_CONVS
    # what the runner prevents: a plain session quantizes the float Convs per tensor and fuses them anyway
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "plain.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    assert Counter(n.op_type for n in onnx.load(tmp_path / "plain.onnx").graph.node)["QLinearConv"] == 123


def test_trained_detector_keeps_its_box_ap_with_every_conv_int8_calibrated_on_other_images(detector, tmp_path):
    gt = GroundTruthSet.open(need(MINI_DIR / "example_wholebody_val.json"), None)

    def box_ap(path: Path) -> float:
        return detector_ap(open_detector(path, 0.3, threads=2, options={"nms_iou": 0.45}), gt)

    written = get_backend("onnxruntime").quantize(detector, frames(48), settings(), KeepFloat(), tmp_path, "det")
    assert written.int8_kernels["QLinearConv"] == 123 and written.int8_kernels["QLinearMul"] > 100
    fp32, int8 = box_ap(detector.path), box_ap(tmp_path / written.main_file)
    assert fp32 > 0.6 and fp32 - int8 <= 0.010, (fp32, int8)
    (tmp_path / "naive").mkdir()
    naive = get_backend("onnxruntime").quantize(detector, frames(48), settings(equalize=False,
                                                                              bias_correction_inputs=0),
                                                KeepFloat(), tmp_path / "naive", "det")
    assert fp32 - box_ap(tmp_path / "naive" / naive.main_file) > 0.10  # one scale per tensor erases channels


def test_int8_kernels_are_counted_on_the_optimized_graph(detector, tmp_path):
    float_outputs = settings(equalize=False, bias_correction_inputs=0, op_types=["Conv"], quantize_outputs=False)
    written = get_backend("onnxruntime").quantize(detector, frames(4), float_outputs, KeepFloat(), tmp_path, "det")
    assert int8_kernels(tmp_path / written.main_file) == written.int8_kernels == {}  # int8 inputs, float compute
