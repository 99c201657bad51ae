"""ONNX -> OpenVINO IR, float32 weights unless fp16 is asked for."""

from __future__ import annotations

from pathlib import Path

import openvino as ov

from rtmw_edge.backends.base import Written
from rtmw_edge.onnx_io import onnx_io


def convert(onnx_path: Path, folder: Path, stem: str, precision: str) -> Written:
    path = folder / f"{stem}.xml"
    input_name, output_names, _ = onnx_io(onnx_path)
    # save_model compresses weights to fp16 unless told not to
    ov.save_model(ov.convert_model(str(onnx_path)), str(path), compress_to_fp16=precision == "fp16")
    return Written(path.name, input_name, output_names)
