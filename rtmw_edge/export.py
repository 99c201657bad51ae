"""Export a registered RTMW to ONNX, OpenVINO IR or ncnn, verify it against PyTorch, write its sidecar.

Every format starts from one ONNX graph (input `input` [N,3,H,W], outputs `simcc_x`, `simcc_y`, batch
dynamic); OpenVINO and ncnn convert that graph. The artifact is checked right after it is written and
only a verified artifact reaches the output folder.
"""

from __future__ import annotations

import subprocess
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtmw_edge.artifact import Artifact, ArtifactMeta, load_artifact, tool_versions, write_metadata
from rtmw_edge.errors import RtmwEdgeError, require
from rtmw_edge.fileio import atomic_dir
from rtmw_edge.keypoints import layout_metadata
from rtmw_edge.model import ModelSpec, build_model, get_spec
from rtmw_edge.topdown import MEAN_RGB, PADDING, STD_RGB

ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAMES = ("simcc_x", "simcc_y")
PROBE_SEED = 20240101
PROBE_BATCH = 2
FORMATS: dict[str, str] = {"onnx": "onnxruntime", "openvino": "openvino", "ncnn": "ncnn"}
PRECISIONS = ("fp32", "fp16")
FP16_MIN_ELEMENTS = 64  # small tensors (BN-folded biases, scales) stay float32


@dataclass(frozen=True)
class Tolerance:
    """How far an artifact may stray from PyTorch on the probe; agreement counts argmax ties as agreeing."""

    max_abs: float
    min_agreement: float


# fp16 stores weights in half precision; on untrained weights the nearly flat logits make argmax fragile,
# so fp16 is held to the logit error, and argmax agreement is reported.
TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("onnxruntime", "fp32"): Tolerance(1e-4, 1.0),
    ("openvino", "fp32"): Tolerance(1e-4, 1.0),
    ("ncnn", "fp32"): Tolerance(1e-3, 1.0),
    ("onnxruntime", "fp16"): Tolerance(5e-2, 0.0),
    ("openvino", "fp16"): Tolerance(5e-2, 0.0),
    ("ncnn", "fp16"): Tolerance(5e-2, 0.0),
}


@dataclass(frozen=True)
class Written:
    main_file: str
    input_name: str
    output_names: list[str]


def artifact_dir(out_dir: Path, spec: ModelSpec, fmt: str, precision: str) -> Path:
    return Path(out_dir) / f"{spec.name}-{fmt}-{precision}"


def export_model(model_name: str, fmt: str, precision: str = "fp32", weights: str = "auto",
                 out_dir: str | Path = "exports", allow_untrained: bool = False, overwrite: bool = False,
                 progress: bool = True) -> tuple[Artifact, dict]:
    """Export, verify and describe one artifact; returns it and its verification figures."""
    from rtmw_edge.weights import load_weights

    spec = get_spec(model_name)
    backend = _backend_of(fmt)
    if precision not in PRECISIONS:
        raise RtmwEdgeError(f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")
    target = artifact_dir(Path(out_dir), spec, fmt, precision)
    if target.exists() and not overwrite:
        raise RtmwEdgeError(f"{target} already exists (use --overwrite to replace it)")
    model = build_model(spec)
    loaded = load_weights(model, spec, weights, allow_untrained=allow_untrained, progress=progress)
    with atomic_dir(target, overwrite=overwrite) as folder:
        written = WRITERS[fmt](model, spec, folder, precision)
        meta = _metadata(spec, backend, precision, written, loaded)
        write_metadata(folder, meta)
        report = verify(Artifact(folder, meta), model)
        meta.verification = report
        write_metadata(folder, meta)
    return load_artifact(target), report


def _backend_of(fmt: str) -> str:
    if fmt not in FORMATS:
        raise RtmwEdgeError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    return FORMATS[fmt]


def _metadata(spec: ModelSpec, backend: str, precision: str, written: Written, weights) -> ArtifactMeta:
    return ArtifactMeta(
        kind="pose",
        model=spec.name,
        backend=backend,
        precision=precision,
        main_file=written.main_file,
        files={},
        input_name=written.input_name,
        output_names=written.output_names,
        input_hw=list(spec.input_hw),
        weights={"kind": weights.kind, "source": weights.source, "sha256": weights.sha256},
        trained=weights.kind != "untrained",
        preprocessing={"channel_order": "RGB", "source_order": "BGR", "mean": list(MEAN_RGB),
                       "std": list(STD_RGB), "padding": PADDING, "layout": "NCHW"},
        decoding={"codec": "simcc", "split_ratio": spec.split_ratio, "sigma": list(spec.sigma),
                  "outputs": list(OUTPUT_NAMES)},
        keypoints=layout_metadata(),
        tools=tool_versions(),
    )


# ---------------------------------------------------------------------------------------------- writers

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


def _write_onnx(model, spec: ModelSpec, folder: Path, precision: str) -> Written:
    path = folder / f"{spec.name}.onnx"
    write_onnx(model, spec, path)
    if precision == "fp16":
        store_weights_fp16(path)
    return Written(path.name, INPUT_NAME, list(OUTPUT_NAMES))


def store_weights_fp16(path: Path) -> None:
    """Half-size file: float weights stored as float16, each cast back to float32 where it is used.

    Compute stays float32 (as OpenVINO's and ncnn's fp16 storage); an engine that computes in float16
    (TensorRT with fp16 on) builds from the same graph.
    """
    onnx = require("onnx", "export")
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or np.prod(init.dims) < FP16_MIN_ELEMENTS:
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{name}.fp16"))
        casts.append(helper.make_node("Cast", [f"{name}.fp16"], [name], to=TensorProto.FLOAT, name=f"{name}.cast"))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(path))


def _write_openvino(model, spec: ModelSpec, folder: Path, precision: str) -> Written:
    ov = require("openvino", "openvino")
    path = folder / f"{spec.name}.xml"
    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        write_onnx(model, spec, onnx_path)
        ov_model = ov.convert_model(str(onnx_path))
        ov.save_model(ov_model, str(path), compress_to_fp16=precision == "fp16")
    return Written(path.name, INPUT_NAME, list(OUTPUT_NAMES))


def _write_ncnn(model, spec: ModelSpec, folder: Path, precision: str) -> Written:
    pnnx = require("pnnx", "export")
    param = folder.resolve() / f"{spec.name}.ncnn.param"
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        onnx_path = scratch / "model.onnx"
        write_onnx(model, spec, onnx_path)
        outputs = {"pnnxparam": "m.pnnx.param", "pnnxbin": "m.pnnx.bin", "pnnxpy": "m_pnnx.py",
                   "pnnxonnx": "m.pnnx.onnx", "ncnnpy": "m_ncnn.py"}
        shape = f"inputshape=[1,3,{spec.input_hw[0]},{spec.input_hw[1]}]"
        args = [pnnx.EXEC_PATH, str(onnx_path), shape,
                f"fp16={int(precision == 'fp16')}", f"ncnnparam={param}",
                f"ncnnbin={param.with_suffix('.bin')}", *(f"{k}={scratch / v}" for k, v in outputs.items())]
        done = subprocess.run(args, cwd=scratch, capture_output=True, text=True)
        if done.returncode != 0 or not param.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RtmwEdgeError(f"pnnx failed to convert {spec.name} to ncnn: {tail[0]}")
    _record_input_shape(param, spec.input_hw)
    return Written(param.name, "in0", ["out0", "out1"])


def _record_input_shape(param: Path, input_hw: tuple[int, int]) -> None:
    """pnnx leaves the ncnn Input layer shapeless; writing w, h, c makes the .param self-describing."""
    lines = param.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.split(maxsplit=1)[0] == "Input":
            lines[i] = f"{line} 0={input_hw[1]} 1={input_hw[0]} 2=3"
            break
    param.write_text("\n".join(lines) + "\n")


WRITERS: dict[str, Callable[..., Written]] = {"onnx": _write_onnx, "openvino": _write_openvino,
                                              "ncnn": _write_ncnn}


# ----------------------------------------------------------------------------------------- verification

def probe_input(input_hw: tuple[int, int], batch: int = PROBE_BATCH) -> np.ndarray:
    """A fixed input with the statistics of a normalised image."""
    return np.random.default_rng(PROBE_SEED).standard_normal((batch, 3, *input_hw), dtype=np.float32)


def verify(artifact: Artifact, model) -> dict:
    """Run the probe through the artifact and PyTorch; raise if they differ beyond the tolerance."""
    torch = require("torch", "export")
    from rtmw_edge.backends import open_runner

    meta = artifact.meta
    probe = probe_input(tuple(meta.input_hw))
    with torch.no_grad():
        expected = [t.numpy() for t in model(torch.from_numpy(probe))]
    runner = open_runner(artifact.main_path, meta.backend, input_name=meta.input_name,
                         output_names=meta.output_names)
    got = runner.run(probe)
    report = compare_logits(expected, got)
    tol = TOLERANCES[(meta.backend, meta.precision)]
    report.update(tolerance_max_abs=tol.max_abs, tolerance_agreement=tol.min_agreement, probe_seed=PROBE_SEED)
    if not report["max_abs"] <= tol.max_abs or report["agreement_with_ties"] < tol.min_agreement:
        raise RtmwEdgeError(
            f"{meta.backend} {meta.precision} export does not match PyTorch: max abs error "
            f"{report['max_abs']:.3g} (allowed {tol.max_abs:g}), argmax agreement "
            f"{report['agreement']:.1%} (allowed {tol.min_agreement:.0%}); artifact removed")
    return report


def compare_logits(expected: list[np.ndarray], got: list[np.ndarray]) -> dict:
    """Max abs error over the SimCC logits and per-axis argmax agreement (exact, and up to ties)."""
    max_abs = max(float(np.abs(e - g).max()) for e, g in zip(expected, got, strict=True))
    exact, with_ties = [], []
    for e, g in zip(expected, got, strict=True):
        picked = g.argmax(axis=-1)
        exact.append(picked == e.argmax(axis=-1))
        at_pick = np.take_along_axis(e, picked[..., None], axis=-1)[..., 0]
        with_ties.append(e.max(axis=-1) - at_pick <= max(max_abs, 1e-6) * 2)
    return {"max_abs": max_abs, "agreement": float(np.mean(exact)),
            "agreement_with_ties": float(np.mean(with_ties)), "finite": bool(all(np.isfinite(g).all()
                                                                                  for g in got))}


def print_report(artifact: Artifact, report: dict, stream=None) -> None:
    print(f"exported {artifact.meta.label} -> {artifact.main_path}", file=stream)
    print(f"  verified against PyTorch on a probe batch of {PROBE_BATCH}: max abs error "
          f"{report['max_abs']:.2e} (allowed {report['tolerance_max_abs']:g}), argmax agreement "
          f"{report['agreement']:.2%} ({report['agreement_with_ties']:.2%} counting ties)", file=stream)
