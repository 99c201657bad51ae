"""`quantize()`: FP32 artifact -> calibration -> INT8 -> accuracy gate (-> mixed precision) -> record.

One result folder, `<out>/<model>-<backend>/`, holds the FP32 and INT8 artifacts, the float precisions kept
beside them (bf16, fp16 where this CPU computes them), quantization.json (the typed record) and report.md. The
gate decides; a failed gate keeps the artifacts but marks them failed, and the CLI exits non-zero.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rtmw_edge.artifact import Artifact, load_artifact, write_metadata
from rtmw_edge.backends import get_backend, open_runner
from rtmw_edge.backends.base import AccuracyControl, KeepFloat
from rtmw_edge.bench.timing import interleaved_latency, speedup
from rtmw_edge.detector import Detector, open_detector
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.evaluation.boxes import detector_ap
from rtmw_edge.evaluation.ground_truth import GroundTruthSet
from rtmw_edge.exporter import artifact_dir, export_detector, export_model
from rtmw_edge.fileio import atomic_dir
from rtmw_edge.machine import ISA_FLAGS, cpu_flags, cpu_name, has_vnni, tool_versions
from rtmw_edge.model import get_spec
from rtmw_edge.quantization.calibration import CalibrationSet, detector_calibration, pose_calibration
from rtmw_edge.quantization.floats import Scored, float_precisions, make_floats
from rtmw_edge.quantization.gate import Budget, Verdict, combined, judge, judge_drift, unjudged_reason
from rtmw_edge.quantization.groups import LAYER_GROUPS, patterns
from rtmw_edge.quantization.recipe import AccuracyControlRecipe, LayerSearchRecipe, Recipe, Sensitivity, load_recipe
from rtmw_edge.quantization.record import (
    RECORD_FILE,
    Accuracy,
    ArtifactFacts,
    Artifacts,
    Attempt,
    CalibrationFacts,
    DetectorRecord,
    Evaluation,
    FloatResult,
    Machine,
    Pair,
    QuantizationRecord,
    Recommendation,
)
from rtmw_edge.quantization.report import render_report, render_table
from rtmw_edge.quantization.scoring import PoseScorer

LATENCY_RUNS = 20
REPORT_FILE = "report.md"


@dataclass(frozen=True)
class QuantizeResult:
    folder: Path  # <out>/<model>-<backend>/
    fp32: Artifact
    int8: Artifact
    record: QuantizationRecord
    table: str  # what the CLI prints
    detector_int8: Artifact | None = None
    floats: dict[str, Artifact] = field(default_factory=dict)  # precision -> the float artifact kept beside

    @property
    def passed(self) -> bool:
        """False only when a judged gate failed (untrained weights are reported, not judged)."""
        return self.record.passed

    @property
    def record_path(self) -> Path:
        return self.folder / RECORD_FILE

    @property
    def report_path(self) -> Path:
        return self.folder / REPORT_FILE


@dataclass(frozen=True)
class _Job:
    recipe: Recipe
    budget: Budget
    threads: int | None
    progress: bool
    floats: tuple[str, ...]


def quantize(model: str | Path, backend: str, calibration: str | Path | None = None, *,
             calibration_images: str | Path | None = None, evaluation: str | Path | None = None,
             evaluation_images: str | Path | None = None, weights: str = "auto", allow_untrained: bool = False,
             detector: str | Path | None = None, recipe: str | Path | None = None,
             max_drop: tuple[float, ...] | None = None, out: str | Path = "quantized", overwrite: bool = False,
             threads: int | None = None, sensitivity: bool = False, precisions: Sequence[str] | None = None,
             progress: bool = True) -> QuantizeResult:
    """INT8 `model` for `backend`, calibrated, judged against FP32 on the same backend, and recorded.

    model: a registered model name or alias (exported with `weights`, see `rtmw-edge export`), or the folder of
        an FP32 pose artifact for `backend`.
    calibration: None (the shipped photos), a folder of images, a video, or a COCO(-WholeBody) JSON whose images
        are in `calibration_images` (default: beside the JSON).
    evaluation: a COCO-WholeBody JSON (images in `evaluation_images`, default beside it): the gate compares AP on
        it; None: the gate measures INT8's agreement with FP32 on held-out crops of the shipped photos.
    detector: a person detector ONNX: quantized and judged too, and it finds the people in `calibration` images.
    recipe: a TOML file whose keys override the backend's shipped recipe (quantize/<backend>.toml).
    max_drop: (whole body, any part) AP points INT8 may lose, and optionally (whole body, any part) mm of 3D drift
        for a 3D model; None: the recipe's [gate] budget (3D: 15, 25 mm).
    out: the folder that receives `<model>-<backend>/`; `overwrite` replaces an existing one.
    sensitivity: also measure each layer group quantized alone (the rows of a recipe's [sensitivity] table).
    precisions: the float precisions to keep beside FP32 and INT8 (default: every one the backend exports);
        each is scored like INT8, and one this CPU cannot compute is skipped with the reason.
    """
    backend = get_backend(backend).name  # the one name, whatever alias was given
    loaded = load_recipe(backend, recipe)
    job = _Job(loaded, _budget(loaded, max_drop), threads, progress, float_precisions(backend, precisions))
    source, name, input_hw = _source(model, backend)
    ground_truth = GroundTruthSet.open(evaluation, evaluation_images) if evaluation else None
    finder = _open_detector(detector, loaded, threads)
    target = Path(out) / f"{name}-{backend}"
    if target.exists() and not overwrite:
        raise RtmwEdgeError(f"{target} already exists (use --overwrite to replace it)")
    calib = _pose_calibration(job, calibration, calibration_images, input_hw, finder)
    with atomic_dir(target, overwrite=overwrite) as folder:
        fp32_dir = artifact_dir(folder, name, backend, "fp32")
        if source is None:
            export_model(name, backend, "fp32", weights=weights, out_dir=folder,
                         allow_untrained=allow_untrained, progress=progress)
        else:
            shutil.copytree(source.folder, fp32_dir)
        record = _quantize_pose(job, load_artifact(fp32_dir), calib, ground_truth, folder, sensitivity)
        if detector is not None:
            part, verdict = _quantize_detector(job, Path(detector), folder, ground_truth, calibration,
                                               calibration_images)
            record = dataclasses.replace(record, detector=part, verdicts={**record.verdicts, "detector": verdict})
        table = render_table(record)
        record.write(folder / RECORD_FILE)
        (folder / REPORT_FILE).write_text(render_report(record, table))

    def moved(facts: ArtifactFacts) -> Artifact:
        return load_artifact(target / Path(facts.path).parent)

    return QuantizeResult(target, moved(record.artifacts.fp32), moved(record.artifacts.int8), record, table,
                          moved(record.detector.artifacts.int8) if record.detector else None,
                          {row.precision: moved(row.artifact) for row in record.floats})


def _budget(recipe: Recipe, max_drop: tuple[float, ...] | None) -> Budget:
    """The recipe's [gate] budget, unless `max_drop` overrides it."""
    if max_drop is not None:
        return Budget(*max_drop)
    return Budget(recipe.gate.max_drop_wholebody, recipe.gate.max_drop_part)


def _source(model: str | Path, backend: str) -> tuple[Artifact | None, str, tuple[int, int]]:
    """(the FP32 artifact to start from or None, the registered model name, the network input size)."""
    if not isinstance(model, Path):
        try:
            spec = get_spec(model)
            return None, spec.name, spec.input_hw
        except RtmwEdgeError as exc:
            if not Path(model).exists():
                raise RtmwEdgeError(f"{exc}; nor is '{model}' an FP32 pose artifact folder") from exc
    artifact = load_artifact(model)
    meta = artifact.meta
    if meta.kind != "pose" or meta.precision != "fp32":
        raise RtmwEdgeError(f"{model} is a {meta.precision} {meta.kind} artifact: the source must be an FP32 pose "
                            "artifact (made by `rtmw-edge export`)")
    if meta.backend != backend:
        raise RtmwEdgeError(f"{model} is for {meta.backend}, not {backend}: export it for {backend} first")
    return artifact, get_spec(meta.model).name, (meta.input_hw[0], meta.input_hw[1])


def _pose_calibration(job: _Job, source: str | Path | None, images_dir: str | Path | None,
                      input_hw: tuple[int, int], finder: Detector | None) -> CalibrationSet:
    recipe = job.recipe
    return pose_calibration(source, input_hw, size=recipe.calibration.size, seed=recipe.calibration.seed,
                            augment=recipe.calibration.augment, detector=finder, images_dir=images_dir,
                            progress=job.progress)


def _open_detector(path: str | Path | None, recipe: Recipe, threads: int | None) -> Detector | None:
    """The detector with the recipe's thresholds: they decide the boxes of calibration and of its judging."""
    return open_detector(path, score_threshold=recipe.detector.score_threshold, threads=threads,
                         options={"nms_iou": recipe.detector.nms_iou})


# ------------------------------------------------------------------------------------------------ pose

def _quantize_pose(job: _Job, fp32: Artifact, calib: CalibrationSet, ground_truth: GroundTruthSet | None,
                   folder: Path, measure_sensitivity: bool) -> QuantizationRecord:
    recipe = job.recipe
    scorer = PoseScorer(fp32, ground_truth, job.threads, seed=recipe.calibration.seed + 1,
                        reference_crops=recipe.gate.reference_crops, progress=job.progress)
    sensitivity = _sensitivity(job, fp32, calib, scorer, folder) if measure_sensitivity else None
    keep = list(recipe.keep_float.groups)
    order = _revert_order(recipe, keep)
    accuracy_control = recipe.gate.accuracy_control
    searches = accuracy_control is not None and accuracy_control.enabled  # the backend's own search, then groups
    why_not = unjudged_reason(fp32.meta.weights["kind"], scorer.metric)
    control = None
    attempts = []
    candidates = tqdm(total=1 + searches + len(order) if recipe.gate.fallback else 1, unit="candidate",
                      desc="INT8 candidates", disable=not job.progress, leave=False)
    while True:
        candidates.set_postfix_str(f"float: {', '.join(keep) or 'none'}")
        int8 = _quantize_once(recipe.backend, recipe.quantizer, fp32, calib, keep, folder, control, job.progress)
        int8_ap, extra = scorer.score(int8)
        verdict, verdicts_3d = _judged(scorer.fp32_ap, int8_ap, extra, job.budget, why_not)
        attempts.append(Attempt(list(keep), int8_ap, verdict, "backend accuracy control" if control else "groups",
                                int8.meta.quantization["reverted_layers"]))
        candidates.update()
        if verdict.passed is not False or not recipe.gate.fallback:
            break
        if searches:  # the backend's own search first, once; where it ends over budget, the groups follow
            searches, control = False, _accuracy_control(fp32, scorer, job.budget, accuracy_control)
            continue
        control = None
        if not order:
            break
        keep.append(order.pop(0))
    candidates.close()
    _mark(int8, verdict, keep, calib, recipe.quantizer)
    floats, skipped = make_floats(fp32, job.floats, folder, scorer, job.budget, job.progress, why_not)
    latency, speedups = _latency([fp32, int8, *(f.artifact for f in floats)], job.threads, job.progress)
    return QuantizationRecord(
        model=fp32.meta.model, backend=recipe.backend, trained=fp32.meta.trained, weights=fp32.meta.weights,
        recipe=recipe.tables(), calibration=_calibration_facts(calib, recipe.calibration.seed),
        evaluation=Evaluation(scorer.metric, scorer.description), budget=job.budget,
        artifacts=Artifacts(_facts(fp32), _facts(int8)), accuracy=Accuracy(scorer.fp32_ap, int8_ap, **extra),
        kept_float=keep, reverted_to_float=keep[len(recipe.keep_float.groups):],
        reverted_layers=int8.meta.quantization["reverted_layers"], attempts=attempts,
        latency_ms=Pair(latency["fp32"], latency["int8"]), sensitivity=sensitivity,
        verdicts={"pose": verdict, **verdicts_3d},
        machine=Machine(cpu_name(), has_vnni(), sorted(cpu_flags() & ISA_FLAGS)), tools=tool_versions(),
        floats=[_float_result(f, latency[f.artifact.meta.precision]) for f in floats], skipped_precisions=skipped,
        recommended=Recommendation.of(latency, {"int8": verdict, **{f.artifact.meta.precision: f.verdict
                                                                    for f in floats}}, speedups),
        int8_kernels=int8.meta.quantization["int8_kernels"])


def _judged(fp32_ap: dict[str, float], int8_ap: dict[str, float], extra: dict, budget: Budget,
            why_not: str | None) -> tuple[Verdict, dict[str, Verdict]]:
    """The pose verdict (a 3D model's 2D and 3D gates together), and the 3D gate's own as {"pose_3d": ...}."""
    verdict = judge(fp32_ap, int8_ap, budget, why_not)
    if extra.get("drift_3d_mm") is None:
        return verdict, {}
    depth = judge_drift(extra["drift_3d_mm"], budget, why_not)
    return combined(verdict, depth), {"pose_3d": depth}


def _sensitivity(job: _Job, fp32: Artifact, calib: CalibrationSet, scorer: PoseScorer,
                 folder: Path) -> dict[str, Sensitivity]:
    """Whole-body AP x100 with only one layer group in int8 (the others float): low means sensitive.

    The figures go into a recipe's [sensitivity] table, which orders the gate's reverts.
    """
    groups = list(LAYER_GROUPS)
    measured = {}
    for group in tqdm(groups, desc="sensitivity", disable=not job.progress, leave=False):
        others = [g for g in groups if g != group]
        ap, extra = scorer.score(_quantize_once(job.recipe.backend, job.recipe.quantizer, fp32, calib, others, folder,
                                                progress=job.progress))
        measured[group] = Sensitivity(round(100 * ap["wholebody"], 2), extra.get("logit_snr_db"))
    return measured


def _accuracy_control(fp32: Artifact, scorer: PoseScorer, budget: Budget,
                      accuracy_control: AccuracyControlRecipe) -> AccuracyControl:
    """The backend's own search, judged by the gate's whole-body metric on each candidate network."""
    return AccuracyControl(validate=lambda runner: scorer.score(fp32, runner)[0]["wholebody"],
                           max_drop=budget.wholebody / 100, max_iterations=accuracy_control.max_iterations,
                           ranking_inputs=accuracy_control.ranking_inputs)


def _revert_order(recipe: Recipe, keep: list[str]) -> list[str]:
    """Groups to revert on a failed gate: most sensitive first (lowest AP alone in int8, then lowest logit
    SNR), then the recipe's order for groups not measured."""
    measured = sorted(recipe.sensitivity.items(),
                      key=lambda kv: (kv[1].ap, math.inf if kv[1].snr_db is None else kv[1].snr_db))
    order = [g for g, _ in measured] + list(recipe.gate.revert_order)
    return list(dict.fromkeys(g for g in order if g not in keep))


def _quantize_once(backend: str, settings: dict, fp32: Artifact, calib: CalibrationSet, keep: list[str],
                   folder: Path, control: AccuracyControl | None = None, progress: bool = False) -> Artifact:
    """`keep` names layer groups and backend layers (what a layer search found) to leave in float."""
    target = artifact_dir(folder, fp32.meta.model, backend, "int8")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    groups = [k for k in keep if k in LAYER_GROUPS]
    kept = KeepFloat(tuple(patterns(groups)), tuple(k for k in keep if k not in LAYER_GROUPS))
    written = get_backend(backend).quantize(fp32.network, calib.inputs, settings, kept, target, fp32.meta.model,
                                            control, progress)
    meta = copy.deepcopy(fp32.meta)
    meta.precision, meta.main_file = "int8", written.main_file
    meta.input_name, meta.output_names = written.input_name, written.output_names
    meta.verification, meta.tools = {}, tool_versions()
    meta.quantization = {"reverted_layers": written.reverted, "int8_kernels": written.int8_kernels}
    write_metadata(target, meta)
    return load_artifact(target)


def _mark(int8: Artifact, verdict: Verdict, keep: list[str], calib: CalibrationSet, settings: dict) -> None:
    """Record the recipe, calibration and gate result in the INT8 artifact's own sidecar."""
    int8.meta.quantization.update({"gate": verdict.label, "reason": verdict.reason, "kept_float": keep,
                                   "calibration_sha256": calib.sha256, "quantizer": settings})
    write_metadata(int8.folder, int8.meta)


def _latency(artifacts: Sequence[Artifact], threads: int | None, progress: bool = False
             ) -> tuple[dict[str, float], dict[str, tuple[float, float, float]]]:
    """Precision -> ms, the median of batch-1 runs interleaved across the artifacts (FP32 first), and each
    precision's speed-up over FP32 with its paired bootstrap interval."""
    batch = np.zeros((1, 3, *artifacts[0].meta.input_hw), np.float32)
    runners = {a.meta.precision: open_runner(a.main_path, a.meta.backend, threads=threads, **a.runner_options)
               for a in artifacts}
    times = interleaved_latency({k: (lambda r=r: r.run(batch)) for k, r in runners.items()}, runs=LATENCY_RUNS,
                                progress=progress, desc="latency")
    return ({k: round(float(np.median(v)) * 1000, 2) for k, v in times.items()},
            {k: speedup(times["fp32"], v) for k, v in times.items() if k != "fp32"})


def _float_result(scored: Scored, latency_ms: float) -> FloatResult:
    meta = scored.artifact.meta
    return FloatResult(meta.precision, get_backend(meta.backend).computes(meta.precision), _facts(scored.artifact),
                       scored.accuracy, scored.logit_snr_db, latency_ms, scored.verdict)


def _facts(artifact: Artifact) -> ArtifactFacts:
    size = sum((artifact.folder / name).stat().st_size for name in artifact.meta.files)
    return ArtifactFacts(f"{artifact.folder.name}/{artifact.meta.main_file}", artifact.meta.precision,
                         round(size / 1e6, 2), artifact.meta.trained)


def _calibration_facts(calib: CalibrationSet, seed: int) -> CalibrationFacts:
    return CalibrationFacts(calib.sha256, len(calib.inputs), seed, calib.description, calib.sources)


# -------------------------------------------------------------------------------------------- detector

def _quantize_detector(job: _Job, onnx: Path, folder: Path, ground_truth: GroundTruthSet | None,
                       calibration: str | Path | None,
                       calibration_images: str | Path | None) -> tuple[DetectorRecord, Verdict]:
    recipe = job.recipe
    fp32 = export_detector(onnx, recipe.backend, "fp32", out_dir=folder)[0]
    settings = {**recipe.quantizer, **recipe.detector.quantizer}  # [detector.quantizer] over [quantizer]
    calib = detector_calibration(calibration, tuple(fp32.meta.input_hw), size=recipe.detector.calibration_size,
                                 seed=recipe.calibration.seed, augment=recipe.calibration.augment,
                                 images_dir=calibration_images, progress=job.progress, scenes=recipe.detector.scenes)
    int8 = _quantize_once(recipe.backend, settings, fp32, calib, [], folder, progress=job.progress)
    box_ap, attempts, reverted = None, [], []
    if ground_truth is None:
        verdict = Verdict(None, {}, "not judged (no ground truth given: --eval)")
    else:
        def measure(artifact: Artifact) -> float:
            return detector_ap(_open_detector(artifact.folder, recipe, job.threads), ground_truth, job.progress)

        fp32_ap, int8_ap = measure(fp32), measure(int8)
        verdict = judge({"box": fp32_ap}, {"box": int8_ap}, job.budget, headline="box")
        attempts.append(Attempt([], {"box": int8_ap}, verdict, "none"))
        ranked = (_ranked_layers(recipe.backend, settings, recipe.gate.layer_search, fp32, calib, job.progress)
                  if verdict.passed is False and recipe.gate.fallback else [])
        count = 1
        searched = tqdm(total=len(ranked).bit_length(), desc="detector candidates", unit="candidate",
                        disable=not job.progress or not ranked, leave=False)
        while verdict.passed is False and count <= len(ranked):
            # the most harmful layers back to float, doubling the count each time
            reverted = ranked[:count]
            searched.set_postfix_str(f"{count} layer(s) float")
            int8 = _quantize_once(recipe.backend, settings, fp32, calib, reverted, folder, progress=job.progress)
            int8_ap = measure(int8)
            verdict = judge({"box": fp32_ap}, {"box": int8_ap}, job.budget, headline="box")
            attempts.append(Attempt(reverted, {"box": int8_ap}, verdict, "layers"))
            searched.update()
            count *= 2
        searched.close()
        box_ap = Pair(fp32_ap, int8_ap)
    _mark(int8, verdict, reverted, calib, settings)
    latency, speedups = _latency([fp32, int8], job.threads, job.progress)
    part = DetectorRecord(model=fp32.meta.model, artifacts=Artifacts(_facts(fp32), _facts(int8)),
                          calibration=_calibration_facts(calib, recipe.calibration.seed),
                          quantizer=settings, box_ap=box_ap, reverted_to_float=reverted, attempts=attempts,
                          latency_ms=Pair(latency["fp32"], latency["int8"]),
                          recommended=Recommendation.of(latency, {"int8": verdict}, speedups),
                          int8_kernels=int8.meta.quantization["int8_kernels"])
    return part, verdict


def _ranked_layers(backend: str, settings: dict, layer_search: LayerSearchRecipe | None, fp32: Artifact,
                   calib: CalibrationSet, progress: bool) -> list[str]:
    """Layers by harm, from backends that can rank them cheaply; others revert nothing."""
    record = get_backend(backend)
    if not record.ranks_layers or layer_search is None:
        return []
    return record.rank_layers(fp32.network, calib.inputs, {**settings, "ranking_inputs": layer_search.ranking_inputs},
                              progress)
