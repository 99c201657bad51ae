"""OpenMMLab's ONNX SDK zips over real HTTP on 127.0.0.1 (zips the tests build in mmdeploy's layout): a good zip is
cached once with its sha256 recorded and reused offline; every bad one is one line and leaves nothing cached."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from http_mirror import Mirror, closed_port
from sdk_zips import detector_onnx, official_path, pose_onnx, sdk_zip
from tiny_artifact import mean_score_detector

from rtmw_edge.detector import letterbox, open_detector
from rtmw_edge.download import DownloadError
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.model.detectors import get_detector
from rtmw_edge.model.registry import get_spec
from rtmw_edge.resolve import detector_artifact

BACKEND = "onnxruntime"
NANO = get_detector("rtmdet-nano")


def files_in(folder: Path) -> list[str]:
    """Every file below `folder`, relative, hidden ones included; [] when it does not exist."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(scope="module")
def nano_zip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return sdk_zip(detector_onnx(NANO, tmp_path_factory.mktemp("onnx")))


def test_a_registered_detector_is_fetched_once_recorded_and_converted(
        mirror: Mirror, cache: Path, nano_zip: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    mirror.serve(official_path(NANO.url), nano_zip)
    folder = detector_artifact("rtmdet-nano", BACKEND)

    assert folder == cache / "artifacts" / f"rtmdet-nano-{BACKEND}-fp32"
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["kind"] == "detector" and meta["weights"]["source"] == NANO.url
    assert meta["preprocessing"]["mean"] == [103.53, 116.28, 123.675]
    record = (cache / f"{NANO.zip_name}.sha256").read_text().split()[0]
    assert record == hashlib.sha256(nano_zip).hexdigest()
    assert "making the rtmdet-nano person detector" in capsys.readouterr().err
    assert detector_artifact("rtmdet-nano", BACKEND) == folder
    assert mirror.requests == [f"/mirror/{official_path(NANO.url)}"]


def test_the_cached_zip_rebuilds_an_artifact_offline(
        mirror: Mirror, cache: Path, nano_zip: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror.serve(official_path(NANO.url), nano_zip)
    folder = detector_artifact("rtmdet-nano", BACKEND)
    shutil.rmtree(folder)
    monkeypatch.setenv("RTMW_EDGE_MIRROR", f"http://127.0.0.1:{closed_port()}/")
    assert detector_artifact("rtmdet-nano", BACKEND) == folder
    assert (folder / "metadata.json").is_file() and len(mirror.requests) == 1


def test_a_cached_zip_that_changed_is_one_line_and_not_used(mirror: Mirror, cache: Path, nano_zip: bytes) -> None:
    mirror.serve(official_path(NANO.url), nano_zip)
    detector_artifact("rtmdet-nano", BACKEND)
    shutil.rmtree(cache / "artifacts" / f"rtmdet-nano-{BACKEND}-fp32")
    (cache / NANO.zip_name).write_bytes(nano_zip[:-10] + b"0123456789")
    with pytest.raises(RtmwEdgeError, match="has changed since it was downloaded") as caught:
        detector_artifact("rtmdet-nano", f"{BACKEND}")
    assert "\n" not in str(caught.value) and len(mirror.requests) == 1


def _member_escaping(zip_bytes: bytes) -> bytes:
    return sdk_zip(None, extra={"../evil.onnx": b"x", "model/end2end.onnx": b"y"})


BAD_ZIPS = {
    "corrupt": (lambda z, _: z[:200] + bytes(b ^ 0x5A for b in z[200:-200]) + z[-200:], None, "not a readable zip"),
    "truncated transfer": (lambda z, _: z[: len(z) // 2], "full", "cut short"),
    "truncated file": (lambda z, _: z[: len(z) // 2], None, "not a readable zip"),
    "member escaping the folder": (lambda z, _: _member_escaping(z), None, "would land outside its folder"),
    "no onnx inside": (lambda z, _: sdk_zip(None), None, "holds no end2end.onnx"),
    "another model's onnx": (lambda z, scratch: sdk_zip(pose_onnx(get_spec("rtmw-m"), scratch)), None,
                             "takes a 3x256x192 input and gives simcc_x, simcc_y; expected 3x320x320 and dets"),
    "not an onnx": (lambda z, _: sdk_zip(b"this is no protobuf"), None, "its end2end.onnx is not an ONNX model"),
}


@pytest.mark.parametrize("case", list(BAD_ZIPS))
def test_a_bad_zip_is_one_line_and_caches_nothing(mirror: Mirror, cache: Path, tmp_path: Path, nano_zip: bytes,
                                                  case: str) -> None:
    make, declared, expected = BAD_ZIPS[case]
    body = make(nano_zip, tmp_path)
    mirror.serve(official_path(NANO.url), body, declared_length=len(nano_zip) if declared else None)
    with pytest.raises(DownloadError) as caught:
        detector_artifact("rtmdet-nano", BACKEND)
    message = str(caught.value)
    assert expected in message and "\n" not in message, message
    assert files_in(cache) == []
    assert not (tmp_path / "evil.onnx").exists() and not (cache.parent / "evil.onnx").exists()


def test_http_404_is_one_line_and_caches_nothing(mirror: Mirror, cache: Path) -> None:
    with pytest.raises(DownloadError, match=f"cannot download {mirror.base}/.*{NANO.zip_name}: HTTP 404"):
        detector_artifact("rtmdet-nano", BACKEND)
    assert files_in(cache) == []


def test_auto_offline_with_nothing_cached_says_how_to_pass_a_file_or_none(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTMW_EDGE_MIRROR", f"http://127.0.0.1:{closed_port()}/")
    with pytest.raises(RtmwEdgeError) as caught:
        detector_artifact("auto", BACKEND, "raspberry-pi")
    message = str(caught.value)
    assert message.startswith("no person detector: rtmdet-nano (the raspberry-pi profile's) is not cached")
    assert "--detector PATH" in message and "--detector none" in message and "\n" not in message
    assert files_in(cache) == []


def test_none_is_no_detector_and_an_unknown_name_lists_the_known_ones(cache: Path) -> None:
    assert detector_artifact("none", BACKEND) is None
    with pytest.raises(RtmwEdgeError, match=r"rtmdet-x is neither a file or folder nor a registered detector "
                                            r"\(known: rtmdet-nano, rtmdet-m, yolox-tiny, .*auto, none\)"):
        detector_artifact("rtmdet-x", BACKEND)


def test_yolox_takes_raw_bgr_pixels_where_rtmdet_takes_normalised_ones(
        mirror: Mirror, cache: Path, tmp_path: Path) -> None:
    tiny = get_detector("yolox-tiny")
    mirror.serve(official_path(tiny.url), sdk_zip(mean_score_detector(tmp_path / "y.onnx", tiny.input_hw)
                                                  .read_bytes()))
    folder = detector_artifact("yolox-tiny", BACKEND)
    assert json.loads((folder / "metadata.json").read_text())["preprocessing"]["std"] == [1.0, 1.0, 1.0]
    white = np.full((*tiny.input_hw, 3), 255, np.uint8)
    (box,) = open_detector(folder, score_threshold=0.0).detect(white)
    assert box[4] == pytest.approx(1.0)
    normalised = letterbox(white, tiny.input_hw)[0]  # RTMDet's default normalisation
    assert float(normalised.mean()) / 255 == pytest.approx(0.0092, abs=1e-3)
