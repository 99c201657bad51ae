"""Make verified, self-describing artifacts: RTMW from PyTorch, and person detectors from their ONNX.

Every artifact starts from one ONNX graph (for RTMW: input `input` [N,3,H,W], outputs `simcc_x`,
`simcc_y`, and `simcc_z` for RTMW3D, batch dynamic) that the backend's `convert` turns into its files. The
artifact is checked right after it is written against its source (PyTorch, or ONNX Runtime on the source
ONNX) and only a verified artifact reaches the output folder.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtmw_edge.artifact import Artifact, ArtifactMeta, load_artifact, sha256_file, write_metadata
from rtmw_edge.backends import BACKENDS, Backend, get_backend, open_runner
from rtmw_edge.backends.base import Written
from rtmw_edge.errors import MissingExtraError, RtmwEdgeError, require
from rtmw_edge.fileio import atomic_dir
from rtmw_edge.keypoints import layout_metadata
from rtmw_edge.machine import cpu_flags, tool_versions
from rtmw_edge.model import ModelSpec, build_model, get_spec
from rtmw_edge.model.detectors import get_detector
from rtmw_edge.model.kinds import is_trained
from rtmw_edge.onnx_io import onnx_io, without_nms
from rtmw_edge.topdown import MEAN_RGB, PADDING, STD_RGB

__all__ = ["Exported", "artifact_dir", "export", "export_detector", "export_model", "export_official"]

ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAMES = ("simcc_x", "simcc_y")
Z_OUTPUT = "simcc_z"  # RTMW3D's third output, the depth logits
PROBE_SEED = 20240101
PROBE_BATCH = 2
DEFAULT_PREPROCESSING = "rtmdet-nano"  # a bare detector ONNX is taken for an RTMDet


@dataclass(frozen=True)
class Exported:
    """A verified artifact and how close it came to its source on the probe input."""

    artifact: Artifact
    verification: dict


def export(model: str | Path, backend: str, precision: str = "fp32", *, weights: str = "auto",
           out: str | Path = "exports", allow_untrained: bool = False, overwrite: bool = False,
           progress: bool = True) -> Exported:
    """One verified artifact that `backend` runs, in `out/<name>-<backend>-<precision>/`.

    `model` is a registered RTMW name or alias (`rtmw-m`; its weights as `weights` says: "auto", a checkpoint
    path or "untrained"), or the path of a person detector's ONNX file (RTMDet), converted as it is.
    """
    if Path(model).suffix.lower() == ".onnx" or Path(model).is_file():
        return Exported(*export_detector(model, backend, precision, out_dir=out, overwrite=overwrite))
    return Exported(*export_model(str(model), backend, precision, weights=weights, out_dir=out,
                                  allow_untrained=allow_untrained, overwrite=overwrite, progress=progress))


def artifact_dir(out_dir: Path, name: str, backend: str, precision: str) -> Path:
    """`<out>/<model>-<backend>-<precision>`, with the backend's one name whatever alias was typed."""
    return Path(out_dir) / f"{name}-{get_backend(backend).name}-{precision}"


def export_model(model_name: str, backend: str, precision: str = "fp32", weights: str = "auto",
                 out_dir: str | Path = "exports", allow_untrained: bool = False, overwrite: bool = False,
                 progress: bool = True) -> tuple[Artifact, dict]:
    """Export, verify and describe one RTMW artifact; returns it and its verification figures."""
    from rtmw_edge.model.weights import load_weights

    spec = get_spec(model_name)
    record = _checked(backend, "pose", precision)
    target = _free_target(artifact_dir(Path(out_dir), spec.name, record.name, precision), overwrite)
    model = build_model(spec)
    loaded = load_weights(model, spec, weights, allow_untrained=allow_untrained, progress=progress)
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / f"{spec.name}.onnx"
        write_onnx(model, spec, source)
        meta = pose_metadata(spec, vars(loaded))
        return _make(source, record, precision, spec.name, meta, _torch_reference(model), target, overwrite)


def export_official(onnx_path: str | Path, model_name: str, backend: str, precision: str = "fp32",
                    out_dir: str | Path = "exports", source: str = "", overwrite: bool = False
                    ) -> tuple[Artifact, dict]:
    """An RTMW artifact from OpenMMLab's own ONNX of the model (its SDK zip's end2end.onnx): no torch needed.

    That ONNX is the network alone, like ours, so the sidecar carries the same preprocessing and SimCC decoding
    as an export from the checkpoint; the artifact is verified against the ONNX. `source` is where it came from.
    """
    spec = get_spec(model_name)
    onnx_path = Path(onnx_path)
    record = _checked(backend, "pose", precision)
    target = _free_target(artifact_dir(Path(out_dir), spec.name, record.name, precision), overwrite)
    _, outputs, chw = onnx_io(onnx_path)
    if tuple(chw) != (3, *spec.input_hw) or list(outputs[:2]) != list(OUTPUT_NAMES):
        raise RtmwEdgeError(f"{onnx_path} is not an ONNX of {spec.name}: it takes {chw} and gives {outputs}, "
                            f"not (3, {spec.input_hw[0]}, {spec.input_hw[1]}) and {', '.join(OUTPUT_NAMES)}")
    weights = {"kind": "official-onnx", "source": source or str(onnx_path), "sha256": sha256_file(onnx_path)}
    meta = pose_metadata(spec, weights)
    return _make(onnx_path, record, precision, spec.name, meta, _onnx_reference(onnx_path), target, overwrite)


def export_detector(onnx_path: str | Path, backend: str, precision: str = "fp32", out_dir: str | Path = "exports",
                    name: str | None = None, overwrite: bool = False, preprocessing: dict | None = None,
                    source: str | None = None) -> tuple[Artifact, dict]:
    """Turn a person detector's ONNX (RTMDet raw head or mmdeploy end-to-end) into a verified artifact.

    `preprocessing` is the sidecar's letterbox normalisation (a registered detector's; RTMDet's by default), and
    `source` where the ONNX came from (default: its path).
    """
    from rtmw_edge.detector import check_detector_outputs

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise RtmwEdgeError(f"detector model {onnx_path} does not exist")
    name = name or onnx_path.stem
    record = _checked(backend, "detector", precision)
    target = _free_target(artifact_dir(Path(out_dir), name, record.name, precision), overwrite)
    _, _, (_, h, w) = onnx_io(onnx_path)
    meta = ArtifactMeta(
        kind="detector", model=name, backend="", precision=precision, main_file="", files={}, input_name="",
        output_names=[], input_hw=[h, w], trained=True,
        weights={"kind": "file", "source": source or str(onnx_path), "sha256": sha256_file(onnx_path)},
        preprocessing=preprocessing or get_detector(DEFAULT_PREPROCESSING).preprocessing,
    )
    with tempfile.TemporaryDirectory() as scratch:
        # an end-to-end detector's NMS only selects (and ncnn cannot run it): `Detector` runs its own
        cut = Path(scratch) / f"{name}.onnx"
        network = cut if without_nms(onnx_path, cut) else onnx_path
        reference = _onnx_reference(network)
        check_detector_outputs(reference(probe_input((h, w), 1)), onnx_path)
        return _make(network, record, precision, name, meta, reference, target, overwrite)


def _checked(backend: str, kind: str, precision: str) -> Backend:
    """The backend's record, once it is known to export `kind` models in `precision` and this CPU to compute
    it (the artifact is verified by running it here)."""
    record = get_backend(backend)
    record.tolerance(kind, precision)
    if reason := record.lacks(precision, cpu_flags()):
        raise RtmwEdgeError(f"cannot export and verify it on this machine: {reason}")
    return record


def _free_target(target: Path, overwrite: bool) -> Path:
    if target.exists() and not overwrite:
        raise RtmwEdgeError(f"{target} already exists (use --overwrite to replace it)")
    return target


def _make(source: Path, backend: Backend, precision: str, stem: str, meta: ArtifactMeta,
          reference: Callable[[np.ndarray], list[np.ndarray]], target: Path, overwrite: bool) -> tuple[Artifact, dict]:
    with atomic_dir(target, overwrite=overwrite) as folder:
        written = backend.convert(source, folder, stem, precision)
        meta.precision = precision
        _describe(meta, backend.name, written)
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


def pose_metadata(spec: ModelSpec, weights: dict) -> ArtifactMeta:
    """The sidecar of an RTMW artifact, before the backend's file names are known; `weights`: kind, source, sha256."""
    return ArtifactMeta(
        kind="pose", model=spec.name, backend="", precision="fp32", main_file="", files={}, input_name="",
        output_names=[], input_hw=list(spec.input_hw),
        weights={key: weights[key] for key in ("kind", "source", "sha256")},
        trained=is_trained(weights["kind"]),
        preprocessing={"channel_order": "RGB", "source_order": "BGR", "mean": list(MEAN_RGB),
                       "std": list(STD_RGB), "padding": PADDING, "layout": "NCHW"},
        decoding={"codec": "simcc", "split_ratio": spec.split_ratio, "sigma": list(spec.sigma),
                  "outputs": list(output_names(spec)), **_depth_decoding(spec)},
        keypoints=layout_metadata(),
    )


def output_names(spec: ModelSpec) -> tuple[str, ...]:
    return (*OUTPUT_NAMES, Z_OUTPUT) if spec.depth else OUTPUT_NAMES


def _depth_decoding(spec: ModelSpec) -> dict:
    """A 3D model's z codec in the sidecar, all the Predictor needs to give keypoints in camera space."""
    depth = spec.depth
    if depth is None:
        return {}
    return {"depth": {"output": Z_OUTPUT, "z_bins": spec.z_bins, "input_depth": depth.input_depth,
                      "sigma": depth.sigma, "z_range": depth.z_range, "root_z": depth.root_z,
                      "focal": list(depth.focal), "root_keypoints": list(depth.root_keypoints)}}


def write_onnx(model, spec: ModelSpec, path: Path) -> None:
    """The one ONNX graph every format starts from (TorchScript exporter: stable, readable node names)."""
    torch = require("torch", "export")
    require("onnx", "export")
    dummy = torch.zeros(1, 3, *spec.input_hw)
    outputs = output_names(spec)
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *outputs)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), str(path), input_names=[INPUT_NAME], output_names=list(outputs),
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
    """The source ONNX on the reference backend, which runs ONNX files as they are; where that runtime is not
    installed (an edge device with one backend), on the first installed backend that reads ONNX too; where none
    does (ncnn alone), in onnx's own reference evaluator: numpy, seconds for one probe, no runtime needed."""
    try:
        return open_runner(onnx_path).run
    except MissingExtraError:
        for record in BACKENDS.values():
            if record.reads_onnx and not record.reference:
                try:
                    return record.open(onnx_path).run
                except MissingExtraError:
                    continue
    return _evaluated(onnx_path)


def _evaluated(onnx_path: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(str(onnx_path))
    (name,) = evaluator.input_names

    def run(batch: np.ndarray) -> list[np.ndarray]:
        with np.errstate(over="ignore", invalid="ignore"):  # its Sigmoid overflows exp() on large logits
            return [np.asarray(out) for out in evaluator.run(None, {name: batch})]

    return run


def verify(artifact: Artifact, reference: Callable[[np.ndarray], list[np.ndarray]]) -> dict:
    """Run the probe through the artifact and its source; raise if they differ beyond the tolerance."""
    meta = artifact.meta
    runner = open_runner(artifact.main_path, meta.backend, **artifact.runner_options)
    probe = probe_input(tuple(meta.input_hw), PROBE_BATCH if meta.kind == "pose" else 1)
    expected, got = reference(probe), runner.run(probe)
    if [e.shape for e in expected] != [g.shape for g in got]:
        raise RtmwEdgeError(f"{meta.backend} {meta.precision} export does not match its source: output shapes "
                            f"{[g.shape for g in got]} instead of {[e.shape for e in expected]}; artifact removed")
    report = compare_logits(expected, got)
    tol = get_backend(meta.backend).tolerance(meta.kind, meta.precision)
    report.update(tolerance_max_rel=tol.max_rel, tolerance_agreement=tol.min_agreement, probe_seed=PROBE_SEED)
    if not report["max_rel"] <= tol.max_rel or report["agreement_with_ties"] < tol.min_agreement:
        raise RtmwEdgeError(
            f"{meta.backend} {meta.precision} export does not match its source: max error "
            f"{report['max_rel']:.3g} of the outputs' scale (allowed {tol.max_rel:g}), argmax agreement "
            f"{report['agreement_with_ties']:.1%} counting ties (allowed {tol.min_agreement:.0%}); artifact removed")
    return report


def compare_logits(expected: list[np.ndarray], got: list[np.ndarray]) -> dict:
    """Max error over the outputs, absolute and relative to the source's largest |value| (a larger model has
    larger logits and proportionally larger float32 rounding), and per-row argmax agreement (exact, and up to
    ties: a pick whose source logit is within twice the error of the source's maximum agrees)."""
    max_abs = max(float(np.abs(e - g).max()) for e, g in zip(expected, got, strict=True))
    scale = max(max(float(np.abs(e).max()) for e in expected), np.finfo(np.float32).tiny)
    exact, with_ties = [], []
    for e, g in zip(expected, got, strict=True):
        picked = g.argmax(axis=-1)
        exact.append(picked == e.argmax(axis=-1))
        at_pick = np.take_along_axis(e, picked[..., None], axis=-1)[..., 0]
        with_ties.append(e.max(axis=-1) - at_pick <= max(max_abs, 1e-6) * 2)
    return {"max_abs": max_abs, "scale": scale, "max_rel": max_abs / scale,
            "agreement": float(np.mean(np.concatenate([a.ravel() for a in exact]))),
            "agreement_with_ties": float(np.mean(np.concatenate([a.ravel() for a in with_ties]))),
            "finite": bool(all(np.isfinite(g).all() for g in got))}


def print_report(artifact: Artifact, report: dict, stream=None) -> None:
    meta = artifact.meta
    computes = get_backend(meta.backend).computes(meta.precision)
    note = f" ({meta.precision} weights, computed in {computes})" if computes != meta.precision else ""
    print(f"exported {meta.label}{note} -> {artifact.main_path}", file=stream)
    print(f"  verified against its source on a probe input: max abs error {report['max_abs']:.2e}, "
          f"{report['max_rel']:.2e} of the outputs' scale {report['scale']:.3g} (allowed "
          f"{report['tolerance_max_rel']:g}), argmax agreement {report['agreement']:.2%} "
          f"({report['agreement_with_ties']:.2%} counting ties)", file=stream)
