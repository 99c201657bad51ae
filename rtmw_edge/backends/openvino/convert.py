"""ONNX -> OpenVINO IR: float32 weights, half-precision ones for fp16; bf16 keeps the float32 IR (the runner
compiles it in bf16)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import openvino as ov

from rtmw_edge.backends.base import Network, Written
from rtmw_edge.onnx_io import onnx_io


def convert(onnx_path: Path, folder: Path, stem: str, precision: str) -> Written:
    input_name, output_names, _ = onnx_io(onnx_path)
    return _save(ov.convert_model(str(onnx_path)), folder, stem, precision, input_name, output_names)


def derive(fp32: Network, folder: Path, stem: str, precision: str) -> Written:
    """The precision's IR from the FP32 one: bf16 shares its files (linked where the file system can)."""
    if precision == "fp16":
        return _save(ov.Core().read_model(str(fp32.path)), folder, stem, precision, fp32.input_name,
                     list(fp32.output_names))
    path = folder / f"{stem}.xml"
    for source, target in ((fp32.path, path), (fp32.path.with_suffix(".bin"), path.with_suffix(".bin"))):
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    return Written(path.name, fp32.input_name, list(fp32.output_names))


def _save(model: ov.Model, folder: Path, stem: str, precision: str, input_name: str,
          output_names: list[str]) -> Written:
    path = folder / f"{stem}.xml"
    # save_model compresses weights to fp16 unless told not to
    ov.save_model(model, str(path), compress_to_fp16=precision == "fp16")
    return Written(path.name, input_name, output_names)
