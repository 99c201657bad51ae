"""`rtmw-edge quantize`: FP32 artifact -> calibration -> INT8 -> accuracy gate (-> mixed precision) -> record.

One folder holds the FP32 and INT8 artifacts, `quantization.json` and `report.md`. The gate decides; a
failed gate keeps the artifacts but marks them failed, and the command exits non-zero.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rtmw_edge.artifact import Artifact, ArtifactMeta, load_artifact, write_metadata
from rtmw_edge.backends import get_backend
from rtmw_edge.backends.base import AccuracyControl, KeepFloat
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.export import artifact_dir, export_detector, export_model
from rtmw_edge.fileio import atomic_dir
from rtmw_edge.machine import ISA_FLAGS, cpu_flags, cpu_name, has_vnni, tool_versions
from rtmw_edge.model import get_spec
from rtmw_edge.quantization.gate import Budget, GroundTruthSet, Verdict, judge
from rtmw_edge.quantization.groups import LAYER_GROUPS, patterns
from rtmw_edge.quantization.recipe import detector_settings, load_recipe

LATENCY_RUNS = 10


@dataclass
class QuantizeRequest:
    backend: str
    model: str = "rtmw-m"
    weights: str = "auto"
    allow_untrained: bool = False
    source: str | None = None  # an FP32 artifact to start from instead of exporting
    calib: str | None = None
    calib_images: str | None = None
    eval_json: str | None = None
    eval_images: str | None = None
    detector: str | None = None  # a detector ONNX to quantize too (and to find people in calibration images)
    recipe: str | None = None
    budget: Budget = field(default_factory=Budget)
    out: str = "quantized"
    overwrite: bool = False
    threads: int | None = None
    sensitivity: bool = False  # also measure each layer group quantized alone
    progress: bool = True


@dataclass
class Outcome:
    folder: Path
    record: dict
    table: str

    @property
    def passed(self) -> bool:
        """False only when a judged gate failed (untrained weights are reported, not judged)."""
        return all(v["passed"] is not False for v in self.record["verdicts"].values())


def run_quantize(request: QuantizeRequest) -> Outcome:
    recipe = load_recipe(request.backend, request.recipe)
    fmt = get_backend(request.backend).name
    source = _fp32_source(request) if request.source else None
    spec = get_spec(source.meta.model if source else request.model)
    evaluation = GroundTruthSet.open(request.eval_json, request.eval_images) if request.eval_json else None
    target = Path(request.out) / f"{spec.name}-{request.backend}-int8"
    if target.exists() and not request.overwrite:
        raise RtmwEdgeError(f"{target} already exists (use --overwrite to replace it)")
    with atomic_dir(target, overwrite=request.overwrite) as folder:
        fp32 = _place_fp32(request, source, spec.name, fmt, folder)
        record = _quantize_pose(request, recipe, fp32, folder, evaluation)
        if request.detector:
            record["detector"] = _quantize_detector(request, recipe, fmt, folder, evaluation)
            record["verdicts"]["detector"] = record["detector"]["verdict"]
        from rtmw_edge.quantization.report import render_report, render_table

        table = render_table(record)
        (folder / "quantization.json").write_text(json.dumps(record, indent=2, default=_jsonable) + "\n")
        (folder / "report.md").write_text(render_report(record, table))
    return Outcome(target, record, table)


# ------------------------------------------------------------------------------------------------ pose

def _fp32_source(request: QuantizeRequest) -> Artifact:
    artifact = load_artifact(request.source)
    meta = artifact.meta
    if meta.kind != "pose" or meta.precision not in ("fp32",):
        raise RtmwEdgeError(f"{request.source} is a {meta.precision} {meta.kind} artifact: the source must be an "
                            "FP32 pose artifact (made by `rtmw-edge export`)")
    if meta.backend != request.backend:
        raise RtmwEdgeError(f"{request.source} is for {meta.backend}, not {request.backend}: export it for "
                            f"{request.backend} first")
    return artifact


def _place_fp32(request: QuantizeRequest, source: Artifact | None, name: str, fmt: str, folder: Path) -> Artifact:
    if source is None:
        return export_model(name, fmt, "fp32", weights=request.weights, out_dir=folder,
                            allow_untrained=request.allow_untrained, progress=request.progress)[0]
    copied = artifact_dir(folder, name, fmt, "fp32")
    shutil.copytree(source.folder, copied)
    return load_artifact(copied)


def _quantize_pose(request: QuantizeRequest, recipe: dict, fp32: Artifact, folder: Path,
                   evaluation: GroundTruthSet | None) -> dict:
    from rtmw_edge.quantization import scoring
    from rtmw_edge.quantization.calibration import pose_calibration

    calib_cfg = recipe["calibration"]
    detector = _calibration_detector(request)
    calib = pose_calibration(request.calib, tuple(fp32.meta.input_hw), size=calib_cfg["size"],
                             seed=calib_cfg["seed"], augment=calib_cfg["augment"], detector=detector,
                             images_dir=request.calib_images, progress=request.progress)
    scorer = scoring.PoseScorer(fp32, evaluation, request.threads, seed=calib_cfg["seed"] + 1,
                                progress=request.progress)
    sensitivity = _sensitivity(request, recipe, fp32, calib, scorer, folder) if request.sensitivity else None
    keep = list(recipe["keep_float"]["groups"])
    order = _revert_order(recipe, keep)
    gate = recipe["gate"]
    control = None
    attempts = []
    while True:
        int8 = _quantize_once(request.backend, recipe, fp32, calib, keep, folder, control)
        int8_ap, extra = scorer.score(int8)
        verdict = judge(scorer.fp32_ap, int8_ap, request.budget, fp32.meta.trained)
        attempts.append({"kept_float": list(keep), "int8_ap": int8_ap, "drops": verdict.drops,
                         "verdict": verdict.label, "search": "nncf accuracy control" if control else "groups",
                         "reverted_layers": int8.meta.quantization["reverted_layers"]})
        if verdict.passed is not False or not gate["fallback"] or control is not None:
            break
        if gate.get("accuracy_control", {}).get("enabled"):  # the backend's own search instead of groups
            control = _accuracy_control(fp32, scorer, request.budget, gate["accuracy_control"])
            continue
        if not order:
            break
        keep.append(order.pop(0))
    _mark(int8, verdict, keep, calib, recipe)
    latency = _latency(fp32, int8, request.threads)
    return {
        "model": fp32.meta.model, "backend": request.backend, "trained": fp32.meta.trained,
        "weights": fp32.meta.weights, "recipe": recipe, "seed": calib_cfg["seed"],
        "calibration": {"sha256": calib.sha256, "size": len(calib.inputs), "sources": calib.sources,
                        "description": calib.description},
        "evaluation": scorer.description, "budget": asdict(request.budget),
        "artifacts": {"fp32": _facts(fp32), "int8": _facts(int8)},
        "accuracy": {"fp32": scorer.fp32_ap, "int8": int8_ap, **extra},
        "reverted_to_float": keep[len(recipe["keep_float"]["groups"]):], "kept_float": keep,
        "reverted_layers": int8.meta.quantization["reverted_layers"],
        "attempts": attempts, "latency_ms": latency, "sensitivity": sensitivity,
        "verdicts": {"pose": _verdict_dict(verdict)},
        "machine": {"cpu": cpu_name(), "vnni": has_vnni(), "flags": sorted(cpu_flags() & ISA_FLAGS)},
        "tools": tool_versions(),
    }



def _sensitivity(request: QuantizeRequest, recipe: dict, fp32: Artifact, calib, scorer, folder: Path) -> dict:
    """Whole-body AP x100 with only one layer group in int8 (the others float): low means sensitive.

    The figures go into a recipe's [sensitivity] table, which orders the gate's reverts.
    """
    groups = list(LAYER_GROUPS)
    measured = {}
    for group in tqdm(groups, desc="sensitivity", disable=not request.progress, leave=False):
        int8 = _quantize_once(request.backend, recipe, fp32, calib, [g for g in groups if g != group], folder)
        ap, extra = scorer.score(int8)
        measured[group] = {"ap": round(100 * ap["wholebody"], 2), "snr_db": extra.get("logit_snr_db")}
    return measured


def _accuracy_control(fp32: Artifact, scorer, budget: Budget, settings: dict) -> AccuracyControl:
    """The backend's own search, judged by the gate's whole-body metric on each candidate network."""
    return AccuracyControl(validate=lambda runner: scorer.score(fp32, runner)[0]["wholebody"],
                           max_drop=budget.wholebody / 100, max_iterations=settings["max_iterations"],
                           ranking_inputs=settings["ranking_inputs"])


def _calibration_detector(request: QuantizeRequest):
    from rtmw_edge.detector import open_detector

    return open_detector(request.detector, threads=request.threads)


def _revert_order(recipe: dict, keep: list[str]) -> list[str]:
    """Groups to revert on a failed gate: most sensitive first (lowest AP alone in int8, then lowest logit
    SNR), then the recipe's order for groups not measured."""
    measured = sorted(recipe.get("sensitivity", {}).items(),
                      key=lambda kv: (kv[1]["ap"], kv[1].get("snr_db", math.inf)))
    order = [g for g, _ in measured] + list(recipe["gate"]["revert_order"])
    return list(dict.fromkeys(g for g in order if g not in keep))


def _quantize_once(backend: str, recipe: dict, fp32: Artifact, calib, keep: list[str], folder: Path,
                   control: AccuracyControl | None = None) -> Artifact:
    """`keep` names layer groups and backend layers (what a layer search found) to leave in float."""
    target = artifact_dir(folder, fp32.meta.model, backend, "int8")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    groups = [k for k in keep if k in LAYER_GROUPS]
    kept = KeepFloat(tuple(patterns(groups)), tuple(k for k in keep if k not in LAYER_GROUPS))
    written = get_backend(backend).quantize(fp32.network, calib.inputs, recipe["quantizer"], kept, target,
                                            fp32.meta.model, control)
    meta = copy.deepcopy(fp32.meta)
    meta.precision, meta.main_file = "int8", written.main_file
    meta.input_name, meta.output_names = written.input_name, written.output_names
    meta.verification, meta.tools = {}, tool_versions()
    meta.quantization = {"reverted_layers": written.reverted}
    write_metadata(target, meta)
    return load_artifact(target)


def _mark(int8: Artifact, verdict: Verdict, keep: list[str], calib, recipe: dict) -> None:
    """Record the recipe, calibration and gate result in the INT8 artifact's own sidecar."""
    int8.meta.quantization.update({"gate": verdict.label, "reason": verdict.reason, "kept_float": keep,
                                   "calibration_sha256": calib.sha256, "quantizer": recipe["quantizer"]})
    write_metadata(int8.folder, int8.meta)


def _latency(fp32: Artifact, int8: Artifact, threads: int | None) -> dict[str, float]:
    from rtmw_edge.backends import open_runner
    from rtmw_edge.bench.timing import interleaved_latency

    batch = np.zeros((1, 3, *fp32.meta.input_hw), np.float32)
    runners = {a.meta.precision: open_runner(a.main_path, a.meta.backend, threads=threads,
                                             input_name=a.meta.input_name, output_names=a.meta.output_names)
               for a in (fp32, int8)}
    times = interleaved_latency({k: (lambda r=r: r.run(batch)) for k, r in runners.items()}, runs=LATENCY_RUNS)
    return {k: round(float(np.median(v)) * 1000, 2) for k, v in times.items()}


def _facts(artifact: Artifact) -> dict:
    size = sum((artifact.folder / name).stat().st_size for name in artifact.meta.files)
    return {"path": f"{artifact.folder.name}/{artifact.meta.main_file}", "precision": artifact.meta.precision,
            "size_mb": round(size / 1e6, 2), "trained": artifact.meta.trained}


def _verdict_dict(verdict: Verdict) -> dict:
    return {"passed": verdict.passed, "label": verdict.label, "reason": verdict.reason, "drops": verdict.drops}


# -------------------------------------------------------------------------------------------- detector

def _quantize_detector(request: QuantizeRequest, recipe: dict, fmt: str, folder: Path,
                       evaluation: GroundTruthSet | None) -> dict:
    from rtmw_edge.detector import open_detector
    from rtmw_edge.quantization.calibration import detector_calibration
    from rtmw_edge.quantization.gate import detector_ap

    fp32 = export_detector(request.detector, fmt, "fp32", out_dir=folder)[0]
    recipe = {**recipe, "quantizer": detector_settings(recipe)}
    calib_cfg = recipe["calibration"]
    calib = detector_calibration(request.calib, tuple(fp32.meta.input_hw), seed=calib_cfg["seed"],
                                 augment=calib_cfg["augment"], progress=request.progress)
    int8 = _quantize_once(request.backend, recipe, fp32, calib, [], folder)
    if evaluation is None:
        verdict = Verdict(None, {}, "not judged (no ground truth given: --eval)")
        return {"artifacts": {"fp32": _facts(fp32), "int8": _facts(int8)}, "verdict": _verdict_dict(verdict),
                "latency_ms": _latency(fp32, int8, request.threads)}

    def box_ap(artifact: Artifact) -> float:
        return detector_ap(open_detector(artifact.folder, threads=request.threads), evaluation, request.progress)

    ap = {"fp32": box_ap(fp32), "int8": box_ap(int8)}
    verdict = judge({"wholebody": ap["fp32"]}, {"wholebody": ap["int8"]}, request.budget, trained=True)
    attempts = [{"kept_float": [], "box_ap": ap["int8"], "verdict": verdict.label}]
    ranked = _ranked_layers(request.backend, recipe, fp32, calib) if verdict.passed is False else []
    count = 1
    while verdict.passed is False and recipe["gate"]["fallback"] and count <= len(ranked):
        # the most harmful layers back to float, doubling the count each time
        int8 = _quantize_once(request.backend, recipe, fp32, calib, ranked[:count], folder)
        ap["int8"] = box_ap(int8)
        verdict = judge({"wholebody": ap["fp32"]}, {"wholebody": ap["int8"]}, request.budget, trained=True)
        attempts.append({"kept_float": ranked[:count], "box_ap": ap["int8"], "verdict": verdict.label})
        count *= 2
    reverted = attempts[-1]["kept_float"]
    _mark(int8, verdict, reverted, calib, recipe)
    return {"artifacts": {"fp32": _facts(fp32), "int8": _facts(int8)}, "box_ap": ap,
            "verdict": _verdict_dict(verdict), "reverted_to_float": reverted, "attempts": attempts,
            "latency_ms": _latency(fp32, int8, request.threads), "quantizer": recipe["quantizer"],
            "calibration": {"sha256": calib.sha256, "size": len(calib.inputs)}}


def _ranked_layers(backend: str, recipe: dict, fp32: Artifact, calib) -> list[str]:
    """Layers by harm, from backends that can rank them cheaply; others revert nothing."""
    record = get_backend(backend)
    return record.rank_layers(fp32.network, calib.inputs, recipe["quantizer"]) if record.ranks_layers else []


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, ArtifactMeta | Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
