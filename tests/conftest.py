"""Shared fixtures: the RTMDet-nano person detector from ../shared on every backend; a private cache for the session
and, per test, an empty download cache with a 127.0.0.1 mirror of OpenMMLab's paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from oracle import MODELS_DIR, need

# The shared .param's Input layer does not record its shape, so the ncnn runner is told it.
RTMDET_NCNN_OPTIONS = {"input_shape": (3, 320, 320)}


@pytest.fixture(scope="session")
def rtmdet_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """Backend -> (model file, runner options); the OpenVINO IR is converted from the ONNX once, in fp32."""
    import openvino as ov

    onnx_path = need(MODELS_DIR / "rtmdet-nano.onnx")
    param = need(MODELS_DIR / "rtmdet-nano.param")
    need(MODELS_DIR / "rtmdet-nano.bin")
    xml = tmp_path_factory.mktemp("openvino") / "rtmdet-nano.xml"
    ov.save_model(ov.convert_model(onnx_path), xml, compress_to_fp16=False)
    return {"onnxruntime": (onnx_path, {}), "openvino": (xml, {}), "ncnn": (param, RTMDET_NCNN_OPTIONS)}


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or fill the user's ~/.cache/rtmw-edge (checkpoints, calibration sets)."""
    import os

    before = os.environ.get("RTMW_EDGE_CACHE")
    os.environ["RTMW_EDGE_CACHE"] = str(tmp_path_factory.mktemp("rtmw-edge-cache"))
    yield
    if before is None:
        os.environ.pop("RTMW_EDGE_CACHE", None)
    else:
        os.environ["RTMW_EDGE_CACHE"] = before


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty download cache for one test; downloads time out in seconds, not minutes."""
    from rtmw_edge import download

    folder = tmp_path / "cache"
    monkeypatch.setenv("RTMW_EDGE_CACHE", str(folder))
    monkeypatch.setattr(download, "DOWNLOAD_TIMEOUT_S", 10.0)
    return folder


@pytest.fixture
def mirror(cache: Path, monkeypatch: pytest.MonkeyPatch):
    """A 127.0.0.1 server that $RTMW_EDGE_MIRROR points at (its base has no trailing slash, on purpose)."""
    from http_mirror import running_mirror

    with running_mirror() as server:
        monkeypatch.setenv("RTMW_EDGE_MIRROR", server.base)
        yield server


@pytest.fixture(scope="session")
def rtmw3d_artifact(tmp_path_factory: pytest.TempPathFactory):
    """fmt -> the FP32 rtmw3d-l artifact (seeded untrained weights) for it, exported once for all 3D tests."""
    from rtmw_edge.exporter import export_model

    out = tmp_path_factory.mktemp("rtmw3d")
    made: dict[str, Path] = {}

    def artifact(fmt: str) -> Path:
        if fmt not in made:
            made[fmt] = export_model("rtmw3d-l", fmt, weights="untrained", out_dir=out, progress=False)[0].folder
        return made[fmt]

    return artifact
