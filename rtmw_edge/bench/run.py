"""`rtmw-edge bench`: find the pose artifacts, plan their runs, measure them all the same way, write the results."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from rtmw_edge.artifact import METADATA_FILE, Artifact, load_artifact
from rtmw_edge.backends import REFERENCE_BACKEND
from rtmw_edge.bench.accuracy import artifact_accuracy, records_beside
from rtmw_edge.bench.measure import WARMUP, cold_load, measure_latency, measure_video, open_video
from rtmw_edge.bench.output import BENCH_FILES, check_free, write_bench
from rtmw_edge.bench.render import render_table
from rtmw_edge.bench.results import (
    Accuracy,
    BenchResults,
    Figures,
    Frame,
    Latency,
    Recommendation,
    RunSettings,
    Skipped,
    Speedup,
)
from rtmw_edge.bench.timing import speedup
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.machine import cpu_flags, cpu_name, describe_machine
from rtmw_edge.predictor import Predictor
from rtmw_edge.profiles import Profile, load_profile
from rtmw_edge.quantization.record import QuantizationRecord

DEFAULT_BATCH, DEFAULT_RUNS = 5, 20
INTERVAL = 0.95  # bootstrap interval of the speed-up


@dataclass
class BenchSettings:
    """What `rtmw-edge bench` was asked; None takes the device profile's value, else the default."""

    threads: int | None = None
    batch: int | None = None
    runs: int | None = None
    warmup: int = WARMUP
    eval_json: str | None = None
    detector: str | None = None
    video: str | None = None
    det_every: int = 1
    baseline: str | None = None
    device_profile: str | None = None
    label: str | None = None
    out: str = "bench-out"
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class Planned:
    """One artifact to run, under a unique short name, with the options its runner gets."""

    name: str
    artifact: Artifact
    options: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchRun:
    """What one bench run measured (as written to results.json), its table, and the folder it wrote."""

    results: BenchResults
    table: str
    folder: Path


@dataclass(frozen=True)
class _Loaded:
    """An artifact loaded in this process, with its cold load's figures and its accuracy."""

    item: Planned
    predictor: Predictor
    load_s: float
    mem_mb: float | None
    accuracy: Accuracy


# --------------------------------------------------------------------------------------------- finding

def find_pose_artifacts(paths: Sequence[str | Path]) -> list[Artifact]:
    """Every pose artifact named by `paths` or held in them at any depth, in the order given, each once."""
    found: dict[Path, Artifact] = {}
    for path in map(Path, paths):
        for artifact in _artifacts_in(path):
            if artifact.meta.kind == "pose":
                found.setdefault(artifact.folder.resolve(), artifact)
    if not found:
        raise RtmwEdgeError(f"no pose artifact in {', '.join(map(str, paths))}: give artifact folders made by "
                            "`rtmw-edge export` or `rtmw-edge quantize`, or folders that hold them")
    return list(found.values())


def _artifacts_in(path: Path) -> list[Artifact]:
    if not path.exists():
        raise RtmwEdgeError(f"{path} does not exist")
    if path.is_file() and not (path.parent / METADATA_FILE).is_file():
        raise RtmwEdgeError(f"{path} is not an artifact (no {METADATA_FILE} beside it): give artifact folders made by "
                            "`rtmw-edge export` or `rtmw-edge quantize`, or folders that hold them")
    if path.is_file() or (path / METADATA_FILE).is_file():
        return [load_artifact(path, verify=False)]
    sidecars = [s for s in sorted(path.rglob(METADATA_FILE))
                if not any(part.startswith(".") for part in s.relative_to(path).parts)]  # unfinished atomic writes
    return [load_artifact(s.parent, verify=False) for s in sidecars]


def plan(artifacts: Sequence[Artifact], profile: Profile | None = None, threads: int | None = None,
         preferred: Sequence[Recommendation] = ()) -> tuple[list[Planned], list[Skipped]]:
    """Artifacts in run order with their runner options, and those the profile's device does not run (why); the
    precision the profile prefers for a backend runs first among that backend's."""
    named = list(zip(_unique_names(artifacts), artifacts, strict=True))
    if profile is None:
        return [Planned(n, a, {"threads": threads, "device": None}) for n, a in named], []
    skipped = [Skipped(n, f"{a.meta.backend} is not a backend of device profile {profile.name}")
               for n, a in named if a.meta.backend not in profile.backends]
    chosen = {r.backend: r.precision for r in preferred}

    def rank(artifact: Artifact) -> tuple[int, bool, int]:
        backend, precision = artifact.meta.backend, artifact.meta.precision
        by_backend, by_precision = profile.rank(backend, precision)
        return by_backend, chosen.get(backend) != precision, by_precision

    kept = sorted(((n, a) for n, a in named if a.meta.backend in profile.backends), key=lambda na: rank(na[1]))
    return [Planned(n, a, profile.runner_options(a.meta.backend, threads)) for n, a in kept], skipped


def _unique_names(artifacts: Sequence[Artifact]) -> list[str]:
    """Folder names, prefixed with their parent's where two artifacts share one."""
    names = [a.folder.name for a in artifacts]
    return [f"{a.folder.parent.name}/{n}" if names.count(n) > 1 else n for a, n in zip(artifacts, names, strict=True)]


def choose_baseline(names: Sequence[str], artifacts: Sequence[Artifact], wanted: str | None = None) -> int:
    """Index of `wanted` (a name or folder), else of the first FP32 artifact of the reference backend, else 0."""
    if wanted:
        for i, (name, artifact) in enumerate(zip(names, artifacts, strict=True)):
            if wanted in (name, artifact.folder.name, str(artifact.folder)):
                return i
        raise RtmwEdgeError(f"baseline {wanted!r} is none of the benchmarked artifacts: {', '.join(names)}")
    return next((i for i, a in enumerate(artifacts)
                 if a.meta.backend == REFERENCE_BACKEND and a.meta.precision == "fp32"), 0)


# ------------------------------------------------------------------------------------------------ job

def run_bench(paths: Sequence[str | Path], settings: BenchSettings) -> BenchRun:
    """Load, evaluate and time every pose artifact found in `paths`; write results.json and the reports."""
    profile = load_profile(settings.device_profile) if settings.device_profile else None
    threads = _given_or(settings.threads, profile.cores() if profile else None, "--threads")
    batch = _given_or(settings.batch, profile.batch if profile else DEFAULT_BATCH, "--batch")
    runs = _given_or(settings.runs, profile.runs if profile else DEFAULT_RUNS, "--runs")
    found = find_pose_artifacts(paths)
    records = records_beside(found)
    preferred = recommend(profile, found, records) if profile else []
    planned, skipped = plan(found, profile, threads, preferred)
    skipped += not_made(records)
    if not planned:
        raise RtmwEdgeError("the device profile runs none of the artifacts given: " + _reasons(skipped))
    choose_baseline([p.name for p in planned], [p.artifact for p in planned], settings.baseline)  # fail fast
    _given_or(settings.det_every, 1, "--det-every")
    out = Path(settings.out)
    check_free(out, BENCH_FILES, settings.overwrite)
    evaluation, frame, frame_info = _inputs(settings, threads, profile)
    if settings.video is not None and not settings.detector:
        raise RtmwEdgeError("--video needs --detector: the frames per second are the whole pipeline's, detector "
                            "included")
    video = open_video(settings.video, settings.detector, settings.det_every) if settings.video else None

    loaded: dict[str, _Loaded] = {}
    for item in tqdm(planned, desc="load + accuracy", disable=not settings.progress, leave=False):
        try:
            predictor = Predictor(item.artifact.folder, **item.options)
            load_s, mem_mb = cold_load(str(item.artifact.folder), item.options, batch)
            accuracy = artifact_accuracy(item.artifact, predictor, evaluation, settings.progress)
        except RtmwEdgeError as exc:  # one runtime missing on a device must not lose the others' results
            skipped.append(Skipped(item.name, str(exc)))
            continue
        loaded[item.name] = _Loaded(item, predictor, load_s, mem_mb, accuracy)
    if not loaded:
        raise RtmwEdgeError("no artifact could be loaded: " + _reasons(skipped))
    names = list(loaded)
    base = names[choose_baseline(names, [loaded[n].item.artifact for n in names], settings.baseline)]
    times = measure_latency({n: v.predictor for n, v in loaded.items()}, batch, runs, settings.warmup, frame,
                            settings.progress)
    fps = {}
    if video is not None:
        video, fps = measure_video({n: v.predictor for n, v in loaded.items()}, video, frame[1], settings.progress)

    machine = describe_machine()
    label = settings.label or (profile.name if profile else platform.node() or cpu_name())
    results = BenchResults(
        label=label + (" (emulated)" if machine.emulated and not settings.label else ""),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine,
        settings=RunSettings(threads=threads, batch=batch, runs=runs, warmup=settings.warmup,
                             eval=settings.eval_json, detector=settings.detector, frame=frame_info, video=video,
                             device_profile=profile.name if profile else None, baseline=base, interval=INTERVAL),
        artifacts=tuple(replace(_figures(v, times[name], times[base], batch), video_fps=fps.get(name))
                        for name, v in loaded.items()),
        skipped=tuple(skipped),
        recommended=tuple(preferred),
    )
    write_bench(results, out, settings.overwrite)
    return BenchRun(results, render_table(results), out)


def recommend(profile: Profile, artifacts: Sequence[Artifact],
              records: Sequence[QuantizationRecord]) -> list[Recommendation]:
    """For each backend of the profile among the artifacts, the precision its rules prefer on this CPU, judged on
    that backend's quantization record where there is one."""
    flags = cpu_flags()
    backends = [b for b in profile.backends if any(a.meta.backend == b for a in artifacts)]
    chosen = []
    for backend in backends:
        record = next((r for r in records if r.backend == backend), None)
        measured = {p: (m.latency_ms, m.within_budget) for p, m in record.measured().items()} if record else None
        choice = profile.choose(flags, measured, frozenset(record.machine.flags) if record else frozenset())
        chosen.append(Recommendation(backend, choice.precision, choice.reason))
    return chosen


def not_made(records: Sequence[QuantizationRecord]) -> list[Skipped]:
    """The precisions each quantization record could not make on its machine, with the reason it gives."""
    return [Skipped(f"{r.model}-{r.backend}-{precision}", f"not made by quantize: {reason}")
            for r in records for precision, reason in r.skipped_precisions.items()]


def _given_or(value: int | None, default: int | None, option: str) -> int | None:
    """The value asked for, else the default; an asked value below 1 is refused (0 is no way to say 'default')."""
    if value is None:
        return default
    if value < 1:
        raise RtmwEdgeError(f"{option} must be at least 1, got {value}")
    return value


def _reasons(skipped: Sequence[Skipped]) -> str:
    return "; ".join(f"{s.name}: {s.reason}" for s in skipped)


def _inputs(settings: BenchSettings, threads: int | None,
            profile: Profile | None) -> tuple[object, tuple | None, Frame | None]:
    """The ground-truth set for --eval, and the end-to-end frame: its first image, else a shipped photo. A registered
    detector's name (or 'auto') runs on the profile's first installed backend."""
    from rtmw_edge.evaluation.ground_truth import GroundTruthSet
    from rtmw_edge.resolve import NO_DETECTOR, detector_artifact, machine_profile

    evaluation = GroundTruthSet.open(settings.eval_json) if settings.eval_json else None
    if settings.detector in (None, "", NO_DETECTOR):
        return evaluation, None, None
    from rtmw_edge.detector import open_detector
    from rtmw_edge.packaged import package_data

    path = evaluation.images()[0][1] if evaluation else sorted(package_data("calib_data").glob("*.jpg"))[0]
    image = cv2.imread(str(path))
    if image is None:
        raise RtmwEdgeError(f"cannot read {path} as an image")
    profile = machine_profile(profile)
    detector = open_detector(detector_artifact(settings.detector, profile.installed_backend(), profile),
                             threads=threads)
    info = Frame(image=path.name, width=image.shape[1], height=image.shape[0], persons=len(detector.detect(image)),
                 detector=Path(settings.detector).name)
    return evaluation, (image, detector), info


def _figures(loaded: _Loaded, times: dict[str, np.ndarray], base: dict[str, np.ndarray], batch: int) -> Figures:
    item, meta = loaded.item, loaded.item.artifact.meta
    return Figures(
        name=item.name, path=str(item.artifact.folder), label=meta.label, model=meta.model, backend=meta.backend,
        precision=meta.precision, trained=meta.trained, options=item.options,
        size_mb=sum((item.artifact.folder / n).stat().st_size for n in meta.files) / 1e6,
        load_s=loaded.load_s, mem_mb=loaded.mem_mb,
        latency_ms={size: Latency.of(times[f"batch{size}"], size) for size in sorted({1, batch})},
        speedup=Speedup(*speedup(base["batch1"], times["batch1"], level=INTERVAL)),
        accuracy=loaded.accuracy,
        e2e_ms=Latency.of(times["e2e"]) if "e2e" in times else None)
