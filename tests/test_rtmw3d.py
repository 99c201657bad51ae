"""RTMW3D on every backend: exports that agree with PyTorch, a sidecar with the z codec, camera-space keypoints in
the Predictor and in `predict`'s JSON and 3D views, and a clear line for what a 3D model cannot do."""

from __future__ import annotations

import contextlib
import io
import json

import cv2
import numpy as np
import onnx
import pytest
from oracle import MINI_DIR, need
from tiny_artifact import constant_artifact

from rtmw_edge import cli, topdown
from rtmw_edge.artifact import load_artifact
from rtmw_edge.backends import get_backend, open_runner
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.model import get_spec
from rtmw_edge.predictor import Predictor

SPEC = get_spec("rtmw3d-l")
IMAGE = "000000000785.jpg"
BOX = np.array([[280.79, 44.73, 499.49, 391.41]], np.float32)  # its ground-truth person
THREADS = 1


@pytest.fixture(scope="module")
def rtmw3d_artifacts(rtmw3d_artifact) -> dict:
    return {fmt: rtmw3d_artifact(fmt) for fmt in ("onnx", "openvino", "ncnn")}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.imread(str(need(MINI_DIR / IMAGE)))


@pytest.fixture(scope="module")
def predictions(rtmw3d_artifacts, photo) -> dict:
    """Each backend's Person for the photo's ground-truth box."""
    return {fmt: Predictor(folder, threads=THREADS).predict(photo, BOX)[0] for fmt, folder in rtmw3d_artifacts.items()}


def test_3d_exports_agree_with_pytorch_on_x_y_and_z(rtmw3d_artifacts):
    """Each export was checked on write against PyTorch on all three outputs; the sidecar keeps the figures."""
    probe = np.random.default_rng(7).standard_normal((1, 3, *SPEC.input_hw), dtype=np.float32)
    for fmt, folder in rtmw3d_artifacts.items():
        artifact = load_artifact(folder)
        got = open_runner(artifact.main_path, artifact.meta.backend, **artifact.runner_options).run(probe)
        assert [g.shape for g in got] == [(1, 133, 576), (1, 133, 768), (1, 133, 576)]
        check = artifact.meta.verification
        assert check["max_rel"] <= get_backend(fmt).tolerance("pose", "fp32").max_rel, fmt
        assert check["agreement_with_ties"] == 1.0 and check["finite"], fmt


def test_3d_onnx_has_simcc_z_batch_dynamic_and_the_sidecar_the_z_codec(rtmw3d_artifacts):
    artifact = load_artifact(rtmw3d_artifacts["onnx"])
    graph = onnx.load(str(artifact.main_path), load_external_data=False).graph
    assert [o.name for o in graph.output] == ["simcc_x", "simcc_y", "simcc_z"]
    assert all(isinstance(o.type.tensor_type.shape.dim[0].dim_param, str) and o.type.tensor_type.shape.dim[0]
               .dim_param for o in graph.output)
    depth = load_artifact(rtmw3d_artifacts["ncnn"]).meta.decoding["depth"]
    assert depth == {"output": "simcc_z", "z_bins": 576, "input_depth": 288, "sigma": 6.0, "z_range": 2.1744869,
                     "root_z": 5.14388, "focal": [1145.04940459, 1143.78109572], "root_keypoints": [11, 12]}


def test_every_backend_gives_the_same_3d_keypoints_within_one_bin(predictions):
    reference = predictions["onnx"]
    z_bin_m = SPEC.depth.z_range / (SPEC.depth.input_depth / 2) / SPEC.split_ratio
    for fmt, person in predictions.items():
        assert person.keypoints_3d.shape == (133, 3) and person.depth.shape == (133,)
        assert np.abs(person.depth - reference.depth).max() <= z_bin_m * 1.001, fmt
        assert np.mean(np.abs(person.keypoints_3d - reference.keypoints_3d).max(-1) < 1e-3) >= 0.99, fmt


def test_keypoints_3d_are_the_pinhole_lift_about_the_true_image_centre_or_the_camera_given(
        rtmw3d_artifacts, predictions, photo):
    person, depth = predictions["onnx"], SPEC.depth
    height, width = photo.shape[:2]
    centre = topdown.camera_space(person.keypoints, person.depth, depth.root_z, (*depth.focal, width / 2, height / 2))
    np.testing.assert_allclose(person.keypoints_3d, centre, rtol=1e-5, atol=1e-6)
    assert np.allclose(person.keypoints_3d[:, 2], person.depth + depth.root_z)
    camera = (600.0, 610.0, 300.0, 200.0)
    given = Predictor(rtmw3d_artifacts["onnx"], threads=THREADS, camera=camera).predict(photo, BOX)[0]
    lifted = topdown.camera_space(person.keypoints, person.depth, depth.root_z, camera)
    np.testing.assert_allclose(given.keypoints_3d, lifted, rtol=1e-5, atol=1e-6)


def test_flip_test_on_a_3d_model_and_a_camera_on_a_2d_one_are_one_line_errors(rtmw3d_artifacts, tmp_path):
    with pytest.raises(RtmwEdgeError, match=r"^rtmw3d-l-384x288 is a 3D model and has no flip test .*--flip-test$"):
        Predictor(rtmw3d_artifacts["onnx"], flip_test=True)
    with pytest.raises(RtmwEdgeError, match="a camera is only used by 3D models"):
        Predictor(constant_artifact(tmp_path / "flat", 0.5), camera=(1, 1, 0, 0))
    with pytest.raises(RtmwEdgeError, match="fx and fy > 0"):
        Predictor(rtmw3d_artifacts["onnx"], camera=(0, 1, 0, 0))


@pytest.mark.parametrize("argv, message", [
    (["--model", "rtmw3d-l", "--flip-test"], "rtmw3d-l-384x288 is a 3D model and has no flip test"),
    (["--camera", "1,2,x"], "--camera takes fx,fy,cx,cy"),
], ids=["flip-test", "bad-camera"])
def test_predict_refuses_flip_test_on_3d_and_a_bad_camera_in_one_line_before_any_model(argv, message, tmp_path,
                                                                                       capsys):
    assert cli.main(["predict", str(need(MINI_DIR / IMAGE)), "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "out").exists()


def test_predict_writes_3d_keypoints_into_its_json_and_a_3d_view_beside_each_overlay(rtmw3d_artifacts, tmp_path):
    out = tmp_path / "out"
    argv = ["predict", str(need(MINI_DIR / IMAGE)), "--model", str(rtmw3d_artifacts["openvino"]), "--detector",
            "none", "--out", str(out), "--threads", str(THREADS), "--camera", "1000,1000,320,212.5"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["000000000785_pose.jpg", "000000000785_pose3d.png",
                                                      "predictions.json"]
    (entry,) = json.loads((out / "predictions.json").read_text())
    assert np.asarray(entry["keypoints_3d"]).shape == (133, 3) and np.asarray(entry["depth"]).shape == (133,)
    np.testing.assert_allclose(np.asarray(entry["keypoints_3d"])[:, 2], np.asarray(entry["depth"]) + 5.14388,
                               atol=2e-4)
    view = cv2.imread(str(out / "000000000785_pose3d.png"))
    assert view is not None and view.shape[1] > view.shape[0] and (view < 250).any()  # two panels, something drawn
