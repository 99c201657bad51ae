"""The three runners load the same trained detector, agree on its outputs and fail with messages a user can act on."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from rtmw_edge.backends import BACKENDS, Runner, backend_for, open_runner
from rtmw_edge.errors import MissingExtraError, RtmwEdgeError

RTMDET_OUTPUTS = ("1211", "1213", "1215")
RTMDET_OUTPUT_SHAPES = [(40, 40, 5), (20, 20, 5), (10, 10, 5)]


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 3, 320, 320)).astype(np.float32)


@pytest.fixture(scope="module")
def runners(rtmdet_models) -> dict[str, Runner]:
    return {name: open_runner(path, threads=2, **options) for name, (path, options) in rtmdet_models.items()}


@pytest.fixture(scope="module")
def outputs(runners, batch) -> dict[str, list[np.ndarray]]:
    return {name: runner.run(batch) for name, runner in runners.items()}


def _relative_error(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """Max abs difference over the output's scale: box distances reach ~170 px, logits ~20."""
    return max(float(np.abs(g - w).max() / np.abs(w).max()) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_runner_reports_the_models_input_and_outputs(runners, backend):
    runner = runners[backend]
    assert isinstance(runner, Runner)
    assert (runner.backend, runner.input_name, runner.input_shape) == (backend, "images", (3, 320, 320))
    assert runner.output_names == RTMDET_OUTPUTS


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_keep_the_onnx_shapes_with_a_leading_batch_axis(outputs, backend):
    assert [o.shape for o in outputs[backend]] == [(3, *s) for s in RTMDET_OUTPUT_SHAPES]
    assert all(o.dtype == np.float32 for o in outputs[backend])


def test_openvino_matches_onnxruntime_to_fp32_rounding(outputs):
    # measured: 1.2e-5 of scale (logits within 1.6e-4, distances within 1.2e-3 px)
    assert _relative_error(outputs["openvino"], outputs["onnxruntime"]) < 1e-4


def test_ncnn_matches_onnxruntime_within_its_fp16_weights(outputs):
    # The shared .bin stores fp16 weights; measured 1.7% of scale on this noise input (logits within 0.1,
    # distances within 1.7 px), while detections on real photos agree within 0.2 px (test_detector).
    assert _relative_error(outputs["ncnn"], outputs["onnxruntime"]) < 3e-2


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_of_three_equals_three_single_runs(runners, outputs, batch, backend):
    singles = [runners[backend].run(batch[i : i + 1]) for i in range(len(batch))]
    for got, want in zip(outputs[backend], zip(*singles, strict=True), strict=True):
        np.testing.assert_allclose(got, np.concatenate(want), rtol=0, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_output_names_choose_and_order_the_outputs(rtmdet_models, batch, backend):
    path, options = rtmdet_models[backend]
    runner = open_runner(path, output_names=["1215", "1211"], **options)
    assert [o.shape for o in runner.run(batch[:1])] == [(1, 10, 10, 5), (1, 40, 40, 5)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unknown_output_name_is_reported_with_the_existing_ones(rtmdet_models, backend):
    path, options = rtmdet_models[backend]
    with pytest.raises(RtmwEdgeError, match="1211"):
        open_runner(path, output_names=["scores"], **options)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_of_the_wrong_size_is_rejected(runners, backend):
    with pytest.raises(RtmwEdgeError, match=r"\[N,3,320,320\]"):
        runners[backend].run(np.zeros((1, 3, 256, 256), np.float32))


def test_an_onnx_model_with_a_fixed_batch_of_two_takes_three_images(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["input", "two"], ["doubled"])],
        "double",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 3, 4, 4])],
        [helper.make_tensor_value_info("doubled", TensorProto.FLOAT, [2, 3, 4, 4])],
        [numpy_helper.from_array(np.float32(2.0), "two")],
    )
    path = tmp_path / "double.onnx"
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
    )
    images = np.arange(3 * 3 * 4 * 4, dtype=np.float32).reshape(3, 3, 4, 4)
    (doubled,) = open_runner(path).run(images)
    np.testing.assert_array_equal(doubled, 2 * images)


def test_ncnn_reads_the_input_shape_from_the_input_layer(rtmdet_models, tmp_path):
    param, _ = rtmdet_models["ncnn"]
    text = param.read_text().replace("0 1 images\n", "0 1 images 0=320 1=320 2=3\n", 1)
    (tmp_path / "det.param").write_text(text)
    shutil.copy(param.with_suffix(".bin"), tmp_path / "det.bin")
    assert open_runner(tmp_path / "det.param").input_shape == (3, 320, 320)


def test_ncnn_without_a_recorded_input_shape_asks_for_one(rtmdet_models):
    with pytest.raises(RtmwEdgeError, match="input_shape"):
        open_runner(rtmdet_models["ncnn"][0])


def test_suffix_picks_the_backend():
    assert [backend_for(f"m{s}") for s in (".onnx", ".XML", ".param")] == ["onnxruntime", "openvino", "ncnn"]


def test_an_unknown_suffix_error_lists_the_supported_ones(tmp_path):
    model = tmp_path / "model.tflite"
    model.write_bytes(b"")
    with pytest.raises(RtmwEdgeError) as error:
        open_runner(model)
    assert all(suffix in str(error.value) for suffix in (".onnx", ".xml", ".param"))


def test_a_file_that_is_not_an_ncnn_param_is_a_user_error(tmp_path):
    model = tmp_path / "model.param"
    model.write_text("layers: []\n")
    with pytest.raises(RtmwEdgeError, match="not an ncnn"):
        open_runner(model)


def test_a_missing_model_file_is_a_user_error(tmp_path):
    with pytest.raises(RtmwEdgeError, match="does not exist"):
        open_runner(tmp_path / "absent.onnx")


def test_openvino_unknown_device_error_lists_available_devices(rtmdet_models):
    with pytest.raises(RtmwEdgeError, match=r"available devices: .*CPU"):
        open_runner(rtmdet_models["openvino"][0], device="TPU")


def test_onnxruntime_unavailable_provider_error_names_the_available_ones(rtmdet_models):
    import onnxruntime

    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime build has TensorRT")
    with pytest.raises(RtmwEdgeError, match=r"available providers: .*CPUExecutionProvider"):
        open_runner(rtmdet_models["onnxruntime"][0], device="tensorrt")


def test_ncnn_unknown_device_is_rejected(rtmdet_models):
    path, options = rtmdet_models["ncnn"]
    with pytest.raises(RtmwEdgeError, match="cpu or vulkan"):
        open_runner(path, device="npu", **options)


def test_a_missing_runtime_names_the_pip_extra(rtmdet_models, monkeypatch):
    path, options = rtmdet_models["ncnn"]
    for module in [m for m in sys.modules if m.startswith("rtmw_edge.backends.ncnn.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "ncnn", None)  # what `import ncnn` meets when ncnn is not installed
    with pytest.raises(MissingExtraError, match=r"rtmw-edge\[ncnn\]"):
        open_runner(path, **options)


def test_a_runner_refuses_a_precision_this_cpu_cannot_compute_naming_its_flag(rtmdet_models):
    """An artifact computes in the precision it names or not at all: never silently in another one."""
    from rtmw_edge.machine import cpu_flags

    refused = 0
    for name, backend in BACKENDS.items():
        path, options = rtmdet_models[name]
        for precision in backend.precisions:
            if backend.lacks(precision, cpu_flags()):
                with pytest.raises(RtmwEdgeError, match=backend.arithmetic[precision].needs[0]):
                    open_runner(path, precision=precision, **options)
                refused += 1
            else:
                assert open_runner(path, precision=precision, **options).run(np.zeros((1, 3, 320, 320), np.float32))
    assert refused  # x86 has no Arm fp16, Arm no AMX


def test_an_openvino_int8_ir_keeps_its_recipes_float_parts_and_an_unknown_one_is_one_line(tmp_path):
    from tiny_artifact import constant_pose_onnx

    from rtmw_edge.backends import get_backend
    from rtmw_edge.backends.base import KeepFloat, Network
    from rtmw_edge.machine import cpu_flags
    from rtmw_edge.quantization.recipe import load_recipe

    record, settings = get_backend("openvino"), load_recipe("openvino").quantizer
    network = Network(constant_pose_onnx(tmp_path / "pose.onnx", 0.5, (16, 12)), "input", ("simcc_x", "simcc_y"))
    calibration = np.random.default_rng(0).standard_normal((4, 3, 16, 12)).astype(np.float32)
    has_bf16 = record.lacks("bf16", cpu_flags()) is None
    for parts in ("bf16", "f32"):
        folder = tmp_path / parts
        folder.mkdir()
        written = record.quantize(network, calibration, settings | {"float_parts": parts}, KeepFloat(), folder, "m")
        runner = open_runner(folder / written.main_file, precision="int8")
        assert runner.computes == ("bf16" if parts == "bf16" and has_bf16 else "f32")
        assert open_runner(folder / written.main_file, precision="fp32").computes == "f32"
    with pytest.raises(RtmwEdgeError, match="float_parts must be one of f32, bf16, got 'f16'"):
        record.quantize(network, calibration, settings | {"float_parts": "f16"}, KeepFloat(), tmp_path, "m")
    assert not list(tmp_path.glob("m.*"))
