"""OpenMMLab-style ONNX SDK zips built by the tests (mmdeploy's layout: end2end.onnx, deploy.json, pipeline.json,
detail.json in a nested folder), and a mirror fixture serving them under the official URL paths."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from tiny_artifact import constant_detector, constant_pose_onnx

from rtmw_edge.download import OFFICIAL_PREFIX
from rtmw_edge.model.detectors import DetectorSpec
from rtmw_edge.model.registry import ModelSpec

SDK_JSON = ("deploy.json", "pipeline.json", "detail.json")


def sdk_zip(onnx: bytes | None, folder: str = "20230928/onnx_sdk/model", extra: dict[str, bytes] | None = None
            ) -> bytes:
    """A zip holding `folder/end2end.onnx` (unless None) and the three SDK JSON files, plus `extra` members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if onnx is not None:
            archive.writestr(f"{folder}/end2end.onnx", onnx)
        for name in SDK_JSON:
            archive.writestr(f"{folder}/{name}", json.dumps({"version": "1.3.1", "name": name}))
        for name, body in (extra or {}).items():
            archive.writestr(name, body)
    return buffer.getvalue()


def official_path(url: str) -> str:
    """The path of an official URL below a mirror's root."""
    return url.removeprefix(OFFICIAL_PREFIX)


def detector_onnx(spec: DetectorSpec, scratch: Path) -> bytes:
    return constant_detector(scratch / f"{spec.name}.onnx", spec.input_hw).read_bytes()


def pose_onnx(spec: ModelSpec, scratch: Path, value: float = 1.0) -> bytes:
    return constant_pose_onnx(scratch / f"{spec.name}.onnx", value, spec.input_hw).read_bytes()
