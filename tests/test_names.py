"""A name is enough: `rtmw-edge predict photo.jpg` and `Wholebody("rtmw-m")` fetch, convert and cache the default
model and the device profile's detector from a mirror of OpenMMLab's paths, without torch (blocked in a
subprocess, as on an edge device) or with it (the checkpoint), and reuse the cache offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from end2end_detector import end2end_detector
from http_mirror import Mirror, closed_port, running_mirror
from oracle import MINI_DIR, MODELS_DIR, need
from sdk_zips import detector_onnx, official_path, pose_onnx, sdk_zip

from rtmw_edge.model.detectors import get_detector
from rtmw_edge.model.registry import get_spec
from rtmw_edge.profiles import default_profile_name, load_profile

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "calib_data" / "astronaut.jpg"
NO_TORCH = "import sys; sys.modules['torch'] = None\n"  # import torch now fails, as where it is not installed
# `pip install 'rtmw-edge[ncnn]'` and pnnx's executable: no torch and no runtime that reads ONNX
NCNN_ONLY = NO_TORCH + "sys.modules['onnxruntime'] = None; sys.modules['openvino'] = None\n"
RTMW_M = get_spec("rtmw-m")


@pytest.fixture
def mirror(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    """OpenMMLab's paths for rtmw-m's ONNX zip and the detector this machine's profile picks."""
    detector = get_detector(load_profile(default_profile_name()).detector)
    with running_mirror() as server:
        server.serve(official_path(RTMW_M.onnx_sdk_url), sdk_zip(pose_onnx(RTMW_M, tmp_path)))
        server.serve(official_path(detector.url), sdk_zip(detector_onnx(detector, tmp_path)))
        monkeypatch.setenv("RTMW_EDGE_MIRROR", server.base)
        yield server


def without_torch(code: str, cwd: Path, blocked: str = NO_TORCH) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", blocked + code], cwd=cwd, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)


def test_predict_a_photo_with_no_other_argument_and_no_torch_then_two_lines_of_python_offline(
        mirror: Mirror, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = without_torch(f"from rtmw_edge.cli import main; sys.exit(main(['predict', {str(PHOTO)!r}]))", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "making rtmw-m-256x192 for" in done.stderr and "from OpenMMLab's ONNX" in done.stderr
    (entry,) = json.loads((tmp_path / "predict-out" / "predictions.json").read_text())
    assert len(entry["keypoints"]) == 17 * 3 and len(entry["lefthand_kpts"]) == 21 * 3  # COCO-WholeBody
    assert len(mirror.requests) == 2

    monkeypatch.setenv("RTMW_EDGE_MIRROR", f"http://127.0.0.1:{closed_port()}/")  # offline from here on
    two_lines = ("import cv2, rtmw_edge\n"
                 "pose = rtmw_edge.Wholebody('rtmw-m')\n"
                 f"persons = pose(cv2.imread({str(PHOTO)!r}))\n"
                 "print(len(persons), persons[0].keypoints.shape, pose.info)")
    done = without_torch(two_lines, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 (133, 2) rtmw-m-256x192 ") and "making" not in done.stderr


def test_with_only_ncnn_a_photo_gets_the_people_of_an_end_to_end_detector_whose_nms_ncnn_cannot_run(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rtmw_edge.artifact import load_artifact
    from rtmw_edge.exporter import export_model

    raw, photo = need(MODELS_DIR / "rtmdet-nano.onnx"), need(MINI_DIR / "000000001000.jpg")
    nano = get_detector("rtmdet-nano")
    # a real RTMW graph (untrained weights) stands in for OpenMMLab's ONNX: pnnx must convert the real thing
    rtmw = export_model("rtmw-m", "onnxruntime", weights="untrained", out_dir=tmp_path / "x", progress=False)[0]
    with running_mirror() as server:
        server.serve(official_path(RTMW_M.onnx_sdk_url), sdk_zip(load_artifact(rtmw.folder).main_path.read_bytes()))
        server.serve(official_path(nano.url), sdk_zip(end2end_detector(raw, tmp_path / "end2end.onnx").read_bytes()))
        monkeypatch.setenv("RTMW_EDGE_MIRROR", server.base)
        done = without_torch("from rtmw_edge.cli import main\n"
                             f"sys.exit(main(['predict', {str(photo)!r}, '--detector', 'rtmdet-nano', "
                             "'--backend', 'ncnn']))", tmp_path, blocked=NCNN_ONLY)
    assert done.returncode == 0, done.stderr
    made = sorted(p.name for p in (cache / "artifacts").iterdir())
    assert made == ["rtmdet-nano-ncnn-fp32", "rtmw-m-256x192-ncnn-fp32"]
    from rtmw_edge.detector import Detector  # the people the raw head finds, through ONNX Runtime here

    people = Detector(raw).detect(cv2.imread(str(photo)))
    assert len(people) >= 10  # the photo's crowd
    boxes = [entry["box"] for entry in json.loads((tmp_path / "predict-out" / "predictions.json").read_text())]
    assert len(boxes) == len(people)
    assert max(abs(a - b) for got, want in zip(boxes, people[:, :4].tolist(), strict=True)
               for a, b in zip(got, want, strict=True)) < 0.05  # pixels


def test_a_model_without_official_onnx_and_no_torch_is_one_line_naming_the_extra(cache: Path, tmp_path: Path
                                                                                  ) -> None:
    done = without_torch("from rtmw_edge.cli import main\n"
                         f"sys.exit(main(['predict', {str(PHOTO)!r}, '--model', 'rtmw-x', '--detector', 'none']))",
                         tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "rtmw-x-256x192 has no official ONNX" in done.stderr and "rtmw-edge[export]" in done.stderr


def test_a_name_that_is_no_model_and_no_path_is_one_line(cache: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from rtmw_edge.cli import main

    assert main(["predict", str(PHOTO), "--model", "rtmw-s", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "rtmw-s is neither a pose artifact (no such file or folder) nor a registered model" in err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_int8_by_name_is_quantized_with_the_default_recipe_once_and_cached(
        mirror: Mirror, cache: Path, tmp_path: Path) -> None:
    code = ("import rtmw_edge, numpy as np\n"
            "pose = rtmw_edge.Wholebody('rtmw-m', backend='onnxruntime', precision='int8', detector='none')\n"
            "print(pose.info)")
    done = without_torch(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "quantizing rtmw-m-256x192 for onnxruntime to INT8 with the default recipe on first use" in done.stderr
    assert done.stdout.startswith("rtmw-m-256x192 onnxruntime int8")
    assert sorted(p.name for p in (cache / "artifacts").iterdir()) == [
        "rtmw-m-256x192-onnxruntime-fp32", "rtmw-m-256x192-onnxruntime-int8"]  # no scratch left behind
    again = without_torch(code, tmp_path)
    assert again.returncode == 0 and "quantizing" not in again.stderr


def test_with_torch_a_name_is_exported_from_the_official_checkpoint(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import cv2
    import torch

    from rtmw_edge.model import build_model
    from rtmw_edge.model import weights as W
    from rtmw_edge.wholebody import Wholebody

    model = build_model(RTMW_M)
    W.init_untrained(model)
    W.calibrate_batchnorm(model, RTMW_M.input_hw)
    checkpoint = io.BytesIO()
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    with running_mirror() as server:
        server.serve(official_path(RTMW_M.url), checkpoint.getvalue())
        monkeypatch.setenv("RTMW_EDGE_MIRROR", server.base)
        pose = Wholebody("rtmw-m", backend="onnxruntime", detector="none", progress=False)
    meta = json.loads((cache / "artifacts" / "rtmw-m-256x192-onnxruntime-fp32" / "metadata.json").read_text())
    assert meta["weights"]["kind"] == "official" and meta["weights"]["source"].startswith(server.base)
    (person,) = pose(cv2.imread(str(PHOTO)))
    assert person.keypoints.shape == (133, 2)


@pytest.mark.parametrize(("machine", "tegra", "expected"), [
    ("x86_64", False, "intel-cpu"), ("aarch64", False, "raspberry-pi"), ("aarch64", True, "jetson")])
def test_the_machine_picks_the_default_profile_and_its_detector(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, machine: str, tegra: bool, expected: str) -> None:
    import platform

    from rtmw_edge import profiles

    mark = tmp_path / "nv_tegra_release"
    if tegra:
        mark.write_text("# R36\n")
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(profiles, "JETSON_MARK", mark)
    assert default_profile_name() == expected
    assert load_profile(expected).detector == {"intel-cpu": "rtmdet-m", "raspberry-pi": "rtmdet-nano",
                                               "jetson": "rtmdet-m"}[expected]


def test_a_profile_naming_an_unknown_detector_is_refused(tmp_path: Path) -> None:
    from rtmw_edge.errors import RtmwEdgeError

    (tmp_path / "profile.toml").write_text('name = "mine"\ndetector = "rtmdet-x"\n')
    with pytest.raises(RtmwEdgeError, match="'detector' must be one of rtmdet-nano, rtmdet-m, yolox-tiny"):
        load_profile(tmp_path)


def test_bench_takes_a_registered_detector_by_name(mirror: Mirror, cache: Path, tmp_path: Path) -> None:
    from tiny_artifact import constant_artifact

    from rtmw_edge.bench import read_results
    from rtmw_edge.cli import main

    nano = get_detector("rtmdet-nano")
    mirror.serve(official_path(nano.url), sdk_zip(detector_onnx(nano, tmp_path)))
    model = constant_artifact(tmp_path / "model", 1.0)
    assert main(["bench", str(model), "--runs", "2", "--batch", "2", "--detector", "rtmdet-nano",
                 "--device-profile", "intel-cpu", "--out", str(tmp_path / "bench")]) == 0
    frame = read_results(tmp_path / "bench" / "results.json").settings.frame
    assert frame.persons == 1 and frame.detector == "rtmdet-nano"
    assert (cache / "artifacts" / f"rtmdet-nano-{load_profile('intel-cpu').installed_backend()}-fp32").is_dir()


def test_with_torch_but_no_checkpoint_on_the_mirror_the_official_onnx_is_used(
        mirror: Mirror, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rtmw_edge.resolve import pose_artifact

    folder = pose_artifact("rtmw-m", "onnxruntime")
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["weights"]["kind"] == "official-onnx" and meta["weights"]["source"] == RTMW_M.onnx_sdk_url
    assert meta["preprocessing"]["channel_order"] == "RGB" and meta["decoding"]["codec"] == "simcc"
    err = capsys.readouterr().err
    assert "checkpoint of rtmw-m-256x192 cannot be downloaded (cannot download" in err and "HTTP 404" in err
    assert "using OpenMMLab's ONNX instead" in err
