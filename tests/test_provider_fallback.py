"""The Jetson profile's ONNX Runtime device, TensorRT -> CUDA -> CPU: where a provider is missing (this machine has
neither), each step down is one warning line naming what is missing and what comes next, and the model runs."""

import logging

import numpy as np
import onnxruntime
import pytest

from rtmw_edge.backends import open_runner
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.profiles import load_profile

LOGGER = "rtmw_edge.backends.onnxruntime.runner"


def _gpu_providers() -> set[str]:
    return {"TensorrtExecutionProvider", "CUDAExecutionProvider"} & set(onnxruntime.get_available_providers())


def test_jetson_profile_falls_back_to_cpu_with_one_line_per_step(rtmdet_models, caplog):
    if _gpu_providers():
        pytest.skip(f"this onnxruntime build has {sorted(_gpu_providers())}")
    device = load_profile("jetson").runner_options("onnxruntime")["device"]
    assert device == "tensorrt,cuda,cpu"
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        runner = open_runner(rtmdet_models["onnxruntime"][0], device=device)
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(lines) == 3, lines
    assert "needs TensorrtExecutionProvider" in lines[0] and lines[0].endswith(": trying cuda")
    assert "needs CUDAExecutionProvider" in lines[1] and lines[1].endswith(": trying cpu")
    assert lines[2] == "onnxruntime: rtmdet-nano.onnx runs on cpu (CPUExecutionProvider)"
    assert all("\n" not in line for line in lines)
    outputs = runner.run(np.zeros((1, *runner.input_shape), np.float32))
    assert all(np.isfinite(o).all() for o in outputs)


def test_a_preference_list_without_an_available_device_is_one_error(rtmdet_models, caplog):
    if _gpu_providers():
        pytest.skip(f"this onnxruntime build has {sorted(_gpu_providers())}")
    with caplog.at_level(logging.WARNING, logger=LOGGER), \
            pytest.raises(RtmwEdgeError, match=r"device 'cuda' needs CUDAExecutionProvider.*available providers"):
        open_runner(rtmdet_models["onnxruntime"][0], device="tensorrt,cuda")
    assert [r.getMessage().endswith(": trying cuda") for r in caplog.records if r.name == LOGGER] == [True]


def test_an_unknown_device_in_the_list_is_refused_before_any_session(rtmdet_models):
    with pytest.raises(RtmwEdgeError, match="unknown device 'npu'"):
        open_runner(rtmdet_models["onnxruntime"][0], device="tensorrt,npu,cpu")
