"""Make verified, self-describing artifacts: RTMW from PyTorch, and person detectors from their ONNX.

Every artifact starts from one ONNX graph (for RTMW: input `input` [N,3,H,W], outputs `simcc_x`,
`simcc_y`, batch dynamic) that `convert` turns into the backend's files. The artifact is checked right
after it is written against its source (PyTorch, or ONNX Runtime on the source ONNX) and only a verified
artifact reaches the output folder.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtmw_edge.artifact import Artifact, ArtifactMeta, load_artifact, sha256_file, tool_versions, write_metadata
from rtmw_edge.convert import FORMATS, PRECISIONS, Written, backend_of, check_precision, convert, onnx_io
from rtmw_edge.errors import RtmwEdgeError, require
from rtmw_edge.fileio import atomic_dir
from rtmw_edge.keypoints import layout_metadata
from rtmw_edge.model import ModelSpec, build_model, get_spec
from rtmw_edge.topdown import MEAN_RGB, PADDING, STD_RGB

__all__ = ["FORMATS", "PRECISIONS", "export_detector", "export_model"]

ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAMES = ("simcc_x", "simcc_y")
PROBE_SEED = 20240101
PROBE_BATCH = 2
# RTMDet's own normalisation (BGR order, letterboxed with 114), spec section 6
DETECTOR_MEAN_BGR = (103.53, 116.28, 123.675)
DETECTOR_STD_BGR = (57.375, 57.12, 58.395)


@dataclass(frozen=True)
class Tolerance:
    """How far an artifact may stray from its source on the probe.

    `max_abs` is absolute for pose logits and relative to the output's largest value for detectors (their
    outputs are box distances in pixels); agreement counts argmax ties as agreeing and is pose-only.
    """

    max_abs: float
    min_agreement: float


# fp16 stores weights in half precision; on untrained weights the nearly flat logits make argmax fragile,
# so fp16 is held to the logit error, and argmax agreement is reported.
TOLERANCES: dict[tuple[str, str, str], Tolerance] = {
    ("pose", "onnxruntime", "fp32"): Tolerance(1e-4, 1.0),
    ("pose", "openvino", "fp32"): Tolerance(1e-4, 1.0),
    ("pose", "ncnn", "fp32"): Tolerance(1e-3, 1.0),
    ("pose", "onnxruntime", "fp16"): Tolerance(5e-2, 0.0),
    ("pose", "openvino", "fp16"): Tolerance(5e-2, 0.0),
    ("pose", "ncnn", "fp16"): Tolerance(5e-2, 0.0),
    ("detector", "onnxruntime", "fp32"): Tolerance(1e-5, 0.0),
    ("detector", "openvino", "fp32"): Tolerance(1e-4, 0.0),
    ("detector", "ncnn", "fp32"): Tolerance(1e-3, 0.0),
    ("detector", "onnxruntime", "fp16"): Tolerance(2e-2, 0.0),
    ("detector", "openvino", "fp16"): Tolerance(2e-2, 0.0),
    ("detector", "ncnn", "fp16"): Tolerance(2e-2, 0.0),
}


def artifact_dir(out_dir: Path, name: str, fmt: str, precision: str) -> Path:
    return Path(out_dir) / f"{name}-{fmt}-{precision}"


def export_model(model_name: str, fmt: str, precision: str = "fp32", weights: str = "auto",
                 out_dir: str | Path = "exports", allow_untrained: bool = False, overwrite: bool = False,
                 progress: bool = True) -> tuple[Artifact, dict]:
    """Export, verify and describe one RTMW artifact; returns it and its verification figures."""
    from rtmw_edge.model.weights import load_weights

    spec = get_spec(model_name)
    backend_of(fmt)
    check_precision(precision)
    target = _free_target(artifact_dir(Path(out_dir), spec.name, fmt, precision), overwrite)
    model = build_model(spec)
    loaded = load_weights(model, spec, weights, allow_untrained=allow_untrained, progress=progress)
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / f"{spec.name}.onnx"
        write_onnx(model, spec, source)
        meta = pose_metadata(spec, loaded)
        return _make(source, fmt, precision, spec.name, meta, _torch_reference(model), target, overwrite)


def export_detector(onnx_path: str | Path, fmt: str, precision: str = "fp32", out_dir: str | Path = "exports",
                    name: str | None = None, overwrite: bool = False) -> tuple[Artifact, dict]:
    """Turn a person detector's ONNX (RTMDet raw head or mmdeploy end-to-end) into a verified artifact."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise RtmwEdgeError(f"detector model {onnx_path} does not exist")
    name = name or onnx_path.stem
    backend_of(fmt)
    check_precision(precision)
    target = _free_target(artifact_dir(Path(out_dir), name, fmt, precision), overwrite)
    _, _, (_, h, w) = onnx_io(onnx_path)
    meta = ArtifactMeta(
        kind="detector", model=name, backend="", precision=precision, main_file="", files={}, input_name="",
        output_names=[], input_hw=[h, w], trained=True,
        weights={"kind": "file", "source": str(onnx_path), "sha256": sha256_file(onnx_path)},
        preprocessing={"channel_order": "BGR", "mean": list(DETECTOR_MEAN_BGR), "std": list(DETECTOR_STD_BGR),
                       "letterbox_pad": 114, "layout": "NCHW"},
    )
    return _make(onnx_path, fmt, precision, name, meta, _onnx_reference(onnx_path), target, overwrite)


def _free_target(target: Path, overwrite: bool) -> Path:
    if target.exists() and not overwrite:
        raise RtmwEdgeError(f"{target} already exists (use --overwrite to replace it)")
    return target


def _make(source: Path, fmt: str, precision: str, stem: str, meta: ArtifactMeta,
          reference: Callable[[np.ndarray], list[np.ndarray]], target: Path, overwrite: bool) -> tuple[Artifact, dict]:
    with atomic_dir(target, overwrite=overwrite) as folder:
        written = convert(source, fmt, folder, stem, precision)
        meta.precision = precision
        _describe(meta, backend_of(fmt), written)
        report = verify(Artifact(folder, meta), reference)
        meta.verification = report
        write_metadata(folder, meta)
    return load_artifact(target), report


def _describe(meta: ArtifactMeta, backend: str, written: Written) -> None:
    meta.backend = backend
    meta.main_file = written.main_file
    meta.input_name = written.input_name
    meta.output_names = written.output_names
    meta.layer_names = written.layer_names
    meta.tools = tool_versions()


def pose_metadata(spec: ModelSpec, weights) -> ArtifactMeta:
    """The sidecar of an RTMW artifact, before the backend's file names are known."""
    return ArtifactMeta(
        kind="pose", model=spec.name, backend="", precision="fp32", main_file="", files={}, input_name="",
        output_names=[], input_hw=list(spec.input_hw),
        weights={"kind": weights.kind, "source": weights.source, "sha256": weights.sha256},
        trained=weights.kind != "untrained",
        preprocessing={"channel_order": "RGB", "source_order": "BGR", "mean": list(MEAN_RGB),
                       "std": list(STD_RGB), "padding": PADDING, "layout": "NCHW"},
        decoding={"codec": "simcc", "split_ratio": spec.split_ratio, "sigma": list(spec.sigma),
                  "outputs": list(OUTPUT_NAMES)},
        keypoints=layout_metadata(),
    )


def write_onnx(model, spec: ModelSpec, path: Path) -> None:
    """The one ONNX graph every format starts from (TorchScript exporter: stable, readable node names)."""
    torch = require("torch", "export")
    require("onnx", "export")
    dummy = torch.zeros(1, 3, *spec.input_hw)
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), str(path), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)


# ----------------------------------------------------------------------------------------- verification

def probe_input(input_hw: tuple[int, int], batch: int = PROBE_BATCH) -> np.ndarray:
    """A fixed input with the statistics of a normalised image."""
    return np.random.default_rng(PROBE_SEED).standard_normal((batch, 3, *input_hw), dtype=np.float32)


def _torch_reference(model) -> Callable[[np.ndarray], list[np.ndarray]]:
    torch = require("torch", "export")

    def run(batch: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in model(torch.from_numpy(batch))]

    return run


def _onnx_reference(onnx_path: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    from rtmw_edge.backends import open_runner

    return open_runner(onnx_path, "onnxruntime").run


def verify(artifact: Artifact, reference: Callable[[np.ndarray], list[np.ndarray]]) -> dict:
    """Run the probe through the artifact and its source; raise if they differ beyond the tolerance."""
    from rtmw_edge.backends import open_runner

    meta = artifact.meta
    runner = open_runner(artifact.main_path, meta.backend, input_name=meta.input_name,
                         output_names=meta.output_names)
    probe = probe_input(tuple(meta.input_hw), PROBE_BATCH if meta.kind == "pose" else 1)
    expected, got = reference(probe), runner.run(probe)
    report = compare_logits(expected, got)
    if meta.kind == "detector":
        report["max_abs"] /= max(float(np.abs(e).max()) for e in expected)
    tol = TOLERANCES[(meta.kind, meta.backend, meta.precision)]
    report.update(tolerance_max_abs=tol.max_abs, tolerance_agreement=tol.min_agreement, probe_seed=PROBE_SEED,
                  relative=meta.kind == "detector")
    if not report["max_abs"] <= tol.max_abs or report["agreement_with_ties"] < tol.min_agreement:
        raise RtmwEdgeError(
            f"{meta.backend} {meta.precision} export does not match its source: max abs error "
            f"{report['max_abs']:.3g} (allowed {tol.max_abs:g}), argmax agreement "
            f"{report['agreement']:.1%} (allowed {tol.min_agreement:.0%}); artifact removed")
    return report


def compare_logits(expected: list[np.ndarray], got: list[np.ndarray]) -> dict:
    """Max abs error over the outputs and per-row argmax agreement (exact, and up to ties)."""
    max_abs = max(float(np.abs(e - g).max()) for e, g in zip(expected, got, strict=True))
    exact, with_ties = [], []
    for e, g in zip(expected, got, strict=True):
        picked = g.argmax(axis=-1)
        exact.append(picked == e.argmax(axis=-1))
        at_pick = np.take_along_axis(e, picked[..., None], axis=-1)[..., 0]
        with_ties.append(e.max(axis=-1) - at_pick <= max(max_abs, 1e-6) * 2)
    return {"max_abs": max_abs, "agreement": float(np.mean(np.concatenate([a.ravel() for a in exact]))),
            "agreement_with_ties": float(np.mean(np.concatenate([a.ravel() for a in with_ties]))),
            "finite": bool(all(np.isfinite(g).all() for g in got))}


def print_report(artifact: Artifact, report: dict, stream=None) -> None:
    kind = "relative " if report.get("relative") else ""
    print(f"exported {artifact.meta.label} -> {artifact.main_path}", file=stream)
    print(f"  verified against its source on a probe input: max {kind}abs error {report['max_abs']:.2e} "
          f"(allowed {report['tolerance_max_abs']:g}), argmax agreement {report['agreement']:.2%} "
          f"({report['agreement_with_ties']:.2%} counting ties)", file=stream)
