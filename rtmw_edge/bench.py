"""`rtmw-edge bench`: every pose artifact given, measured the same way on this machine, in one table and one plot.

Latency runs are interleaved across artifacts (A B C A B C ...) so that the load of a shared machine hits all of
them alike, and each artifact's speed is a ratio against a baseline measured in the same rounds, with a bootstrap
interval. `results.json` keeps the machine, the settings and every figure and run, so that `rtmw-edge report
merge` can put several devices side by side.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from rtmw_edge.artifact import METADATA_FILE, Artifact, load_artifact, tool_versions
from rtmw_edge.benchmark import interleaved_latency, percentiles_ms, speedup
from rtmw_edge.errors import MissingExtraError, RtmwEdgeError, require
from rtmw_edge.fileio import atomic_file, ensure_writable_dir
from rtmw_edge.predictor import Predictor
from rtmw_edge.profiles import Profile, load_profile
from rtmw_edge.quantization.cpu import ISA_FLAGS, cpu_flags, cpu_name, has_vnni
from rtmw_edge.table import format_table

FORMAT = "rtmw-edge-bench/1"
BENCH_FILES = ("results.json", "report.md", "report.html", "pareto.png")
REPORT_FILES = BENCH_FILES[1:]
DEFAULT_BATCH, DEFAULT_RUNS, WARMUP = 5, 20, 2
INTERVAL = 0.95  # bootstrap interval of the speed-up
LOG_X_SPREAD = 8.0  # latency axis goes logarithmic when the slowest point is this many times the fastest
BACKEND_COLOURS = {"onnxruntime": "#1f77b4", "openvino": "#d62728", "ncnn": "#2ca02c"}
PRECISION_MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}
DEVICE_STYLES = [("#1f77b4", "o"), ("#d62728", "s"), ("#2ca02c", "^"), ("#9467bd", "D"), ("#ff7f0e", "v"),
                 ("#8c564b", "P")]
LIBRARIES = ("onnxruntime", "openvino", "ncnn", "numpy")


@dataclass
class BenchSettings:
    """What `rtmw-edge bench` was asked; None takes the device profile's value, else the default."""

    threads: int | None = None
    batch: int | None = None
    runs: int | None = None
    warmup: int = WARMUP
    eval_json: str | None = None
    detector: str | None = None
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

    results: dict
    table: str
    folder: Path


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


def plan(artifacts: Sequence[Artifact], profile: Profile | None = None,
         threads: int | None = None) -> tuple[list[Planned], list[dict]]:
    """Artifacts in run order with their runner options, and those the profile's device does not run (why)."""
    named = list(zip(_unique_names(artifacts), artifacts, strict=True))
    if profile is None:
        return [Planned(n, a, {"threads": threads, "device": None}) for n, a in named], []
    skipped = [{"name": n, "reason": f"{a.meta.backend} is not a backend of device profile {profile.name}"}
               for n, a in named if a.meta.backend not in profile.backends]
    kept = sorted(((n, a) for n, a in named if a.meta.backend in profile.backends),
                  key=lambda na: profile.rank(na[1].meta.backend, na[1].meta.precision))
    return [Planned(n, a, profile.runner_options(a.meta.backend, threads)) for n, a in kept], skipped


def _unique_names(artifacts: Sequence[Artifact]) -> list[str]:
    """Folder names, prefixed with their parent's where two artifacts share one."""
    names = [a.folder.name for a in artifacts]
    return [f"{a.folder.parent.name}/{n}" if names.count(n) > 1 else n for a, n in zip(artifacts, names, strict=True)]


def choose_baseline(names: Sequence[str], artifacts: Sequence[Artifact], wanted: str | None = None) -> int:
    """Index of `wanted` (a name or folder), else of the first FP32 ONNX Runtime artifact, else 0."""
    if wanted:
        for i, (name, artifact) in enumerate(zip(names, artifacts, strict=True)):
            if wanted in (name, artifact.folder.name, str(artifact.folder)):
                return i
        raise RtmwEdgeError(f"baseline {wanted!r} is none of the benchmarked artifacts: {', '.join(names)}")
    return next((i for i, a in enumerate(artifacts) if (a.meta.backend, a.meta.precision) == ("onnxruntime", "fp32")),
                0)


# ------------------------------------------------------------------------------------------- measuring

def measure_latency(predictors: Mapping[str, Predictor], batch: int, runs: int, warmup: int = WARMUP,
                    frame: tuple[np.ndarray, object] | None = None,
                    progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Seconds per call of each artifact's network at batch 1 and `batch` ('batch1', 'batchN') and, given a
    (BGR image, detector) frame, of the whole detector + pose pipeline ('e2e'). One round calls every artifact
    once per measurement, artifact after artifact, so no artifact gets the machine's quiet moments alone."""
    calls = {}
    for size in sorted({1, batch}):
        for name, predictor in predictors.items():
            crops = _crops(predictor, size)
            calls[name, f"batch{size}"] = lambda p=predictor, c=crops: p.runner.run(c)
    if frame is not None:
        image, detector = frame
        for name, predictor in predictors.items():
            calls[name, "e2e"] = lambda p=predictor: p.predict(image, detector.detect(image))
    times = interleaved_latency(calls, runs=runs, warmup=warmup, progress=progress)
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in predictors}
    for (name, what), seconds in times.items():
        out[name][what] = seconds
    return out


def _crops(predictor: Predictor, size: int) -> np.ndarray:
    """Normalised-looking inputs; dense CPU inference takes the same time whatever the pixels are."""
    return np.random.default_rng(0).standard_normal((size, 3, *predictor.input_hw), dtype=np.float32)


def cold_load(folder: str, options: dict[str, object], batch: int) -> tuple[float, float | None]:
    """Load time and peak-memory growth of one artifact in a fresh process, as an application starting up sees them.

    In the benchmarking process, memory freed by earlier artifacts is reused without the resident size growing, so
    its figures would depend on the order of the artifacts; a new process per artifact does not.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_load_and_run, folder, options, batch).result()


def _load_and_run(folder: str, options: dict[str, object], batch: int) -> tuple[float, float | None]:
    resettable = _reset_peak_memory()
    before = _memory_mb("VmRSS")
    start = time.perf_counter()
    predictor = Predictor(folder, **options)
    load_s = time.perf_counter() - start
    predictor.runner.run(_crops(predictor, batch))
    after = _memory_mb("VmHWM" if resettable else "VmRSS")
    return load_s, None if before is None or after is None else max(after - before, 0.0)


def _reset_peak_memory() -> bool:
    """Linux resets VmHWM to the current RSS when "5" is written to clear_refs; without it, RSS growth stands in."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _memory_mb(field_name: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _accuracy(artifact: Artifact, predictor: Predictor, evaluation, progress: bool) -> dict:
    """AP measured on --eval's ground truth, else what the artifact's quantization record measured, else none."""
    if evaluation is not None:
        from rtmw_edge.quantization.gate import pose_ap

        parts = pose_ap(predictor, evaluation, progress)
        return {"metric": "ap", "wholebody": parts["wholebody"], "parts": parts,
                "source": f"COCO-WholeBody AP on {evaluation.json_path.name} (ground-truth boxes, no flip)"}
    record = _quantization_record(artifact)
    if record is None:
        return {"metric": None, "wholebody": None, "parts": {}, "source": "not measured (no --eval, no record)"}
    parts = record["accuracy"][artifact.meta.precision]
    metric = "agreement" if "nme" in record["accuracy"] else "ap"
    return {"metric": metric, "wholebody": parts["wholebody"], "parts": parts,
            "source": f"quantization record: {record['evaluation']}"}


def _quantization_record(artifact: Artifact) -> dict | None:
    """The quantization.json beside the artifact's folder, when it speaks of this backend and precision."""
    path = artifact.folder.parent / "quantization.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    accuracy = record.get("accuracy", {})
    mine = record.get("backend") == artifact.meta.backend and record.get("model") == artifact.meta.model
    return record if mine and "wholebody" in accuracy.get(artifact.meta.precision, {}) else None


def describe_machine() -> dict:
    """What decides the numbers: CPU and its instruction sets, cores, OS, Python and the runtimes' versions."""
    flags = cpu_flags()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_name(), "isa": sorted(flags & ISA_FLAGS), "flags": sorted(flags), "vnni": has_vnni(),
            "cores": cores, "arch": platform.machine(), "os": platform.platform(), "hostname": platform.node(),
            "python": platform.python_version(), "libraries": tool_versions()}


# ------------------------------------------------------------------------------------------------ job

def run_bench(paths: Sequence[str | Path], settings: BenchSettings) -> BenchRun:
    """Load, evaluate and time every pose artifact found in `paths`; write results.json and the reports."""
    profile = load_profile(settings.device_profile) if settings.device_profile else None
    threads = settings.threads or (profile.threads if profile else None)
    batch = _positive(settings.batch or (profile.batch if profile else DEFAULT_BATCH), "--batch")
    runs = _positive(settings.runs or (profile.runs if profile else DEFAULT_RUNS), "--runs")
    planned, skipped = plan(find_pose_artifacts(paths), profile, threads)
    if not planned:
        raise RtmwEdgeError("the device profile runs none of the artifacts given: "
                            + "; ".join(f"{s['name']}: {s['reason']}" for s in skipped))
    choose_baseline([p.name for p in planned], [p.artifact for p in planned], settings.baseline)  # fail fast
    out = Path(settings.out)
    _check_free(out, BENCH_FILES, settings.overwrite)
    evaluation, frame, frame_info = _inputs(settings, threads)

    loaded: dict[str, tuple[Planned, Predictor, dict]] = {}
    for item in tqdm(planned, desc="load + accuracy", disable=not settings.progress, leave=False):
        try:
            predictor = Predictor(item.artifact.folder, **item.options)
            load_s, mem_mb = cold_load(str(item.artifact.folder), item.options, batch)
            accuracy = _accuracy(item.artifact, predictor, evaluation, settings.progress)
        except RtmwEdgeError as exc:  # one runtime missing on a device must not lose the others' results
            skipped.append({"name": item.name, "reason": str(exc)})
            continue
        loaded[item.name] = (item, predictor, {"load_s": load_s, "mem_mb": mem_mb, "accuracy": accuracy})
    if not loaded:
        raise RtmwEdgeError("no artifact could be loaded: " + "; ".join(f"{s['name']}: {s['reason']}" for s in skipped))
    names = list(loaded)
    base = names[choose_baseline(names, [loaded[n][0].artifact for n in names], settings.baseline)]
    times = measure_latency({n: v[1] for n, v in loaded.items()}, batch, runs, settings.warmup, frame,
                            settings.progress)

    results = {
        "format": FORMAT,
        "label": settings.label or (profile.name if profile else platform.node() or cpu_name()),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "settings": {"threads": threads, "batch": batch, "runs": runs, "warmup": settings.warmup,
                     "eval": settings.eval_json, "detector": settings.detector, "e2e_frame": frame_info,
                     "device_profile": profile.name if profile else None, "baseline": base,
                     "interval": INTERVAL},
        "artifacts": [_figures(item, facts, times[name], times[base], batch, frame_info)
                      for name, (item, _, facts) in loaded.items()],
        "skipped": skipped,
    }
    write_bench(results, out, settings.overwrite)
    return BenchRun(results, render_table(results), out)


def _positive(value: int, option: str) -> int:
    if value < 1:
        raise RtmwEdgeError(f"{option} must be at least 1, got {value}")
    return value


def _check_free(out: Path, names: Sequence[str], overwrite: bool) -> None:
    """Refuse before measuring, not after minutes of it, when results would be overwritten unasked."""
    taken = [name for name in names if (out / name).exists()]
    if taken and not overwrite:
        raise RtmwEdgeError(f"{out / taken[0]} already exists (use --overwrite to replace it)")


def _inputs(settings: BenchSettings, threads: int | None) -> tuple[object, tuple | None, dict | None]:
    """The ground-truth set for --eval, and the end-to-end frame: its first image, else a shipped photo."""
    from rtmw_edge.quantization.gate import GroundTruthSet

    evaluation = GroundTruthSet.open(settings.eval_json) if settings.eval_json else None
    if not settings.detector:
        return evaluation, None, None
    from rtmw_edge.detector import open_detector
    from rtmw_edge.quantization.calibration import shipped_calibration_dir

    path = evaluation.images()[0][1] if evaluation else sorted(shipped_calibration_dir().glob("*.jpg"))[0]
    image = cv2.imread(str(path))
    if image is None:
        raise RtmwEdgeError(f"cannot read {path} as an image")
    detector = open_detector(settings.detector, threads=threads)
    info = {"image": path.name, "size": [image.shape[1], image.shape[0]], "persons": len(detector.detect(image)),
            "detector": Path(settings.detector).name}
    return evaluation, (image, detector), info


def _figures(item: Planned, facts: dict, times: dict[str, np.ndarray], base: dict[str, np.ndarray],
             batch: int, frame: dict | None) -> dict:
    meta = item.artifact.meta
    ratio, low, high = speedup(base["batch1"], times["batch1"])
    latency = {}
    for size in sorted({1, batch}):
        seconds = times[f"batch{size}"]
        latency[f"batch{size}"] = {**percentiles_ms(seconds, size), "per": "crop", "batch": size,
                                   "runs": _ms(seconds / size)}
    e2e = None
    if "e2e" in times:
        e2e = {**percentiles_ms(times["e2e"]), "per": "frame", "persons": (frame or {}).get("persons"),
               "runs": _ms(times["e2e"])}
    size_mb = sum((item.artifact.folder / n).stat().st_size for n in meta.files) / 1e6
    return {"name": item.name, "path": str(item.artifact.folder), "label": meta.label, "model": meta.model,
            "backend": meta.backend, "precision": meta.precision, "trained": meta.trained,
            "options": item.options, "size_mb": size_mb, "load_s": facts["load_s"], "mem_mb": facts["mem_mb"],
            "latency_ms": latency, "speedup": {"value": ratio, "low": low, "high": high},
            "accuracy": facts["accuracy"], "e2e_ms": e2e}


def _ms(seconds: np.ndarray) -> list[float]:
    return [round(float(s) * 1000.0, 3) for s in seconds]


# ------------------------------------------------------------------------------------------ rendering

def table_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the one table: one row per artifact, every figure a reader compares."""
    batch = results["settings"]["batch"]
    base = results["settings"]["baseline"]
    header = ["artifact", "backend", "precision", "size MB", "load s", "mem MB", "p50 ms", "p90 ms", "p99 ms",
              f"ms/crop @b{batch}", f"speed-up [{INTERVAL:.0%} CI]", "whole-body AP", "e2e ms/frame"]
    rows = []
    for a in results["artifacts"]:
        one, many = a["latency_ms"]["batch1"], a["latency_ms"][f"batch{batch}"]
        s = a["speedup"]
        ratio = "1.00x (baseline)" if a["name"] == base else f"{s['value']:.2f}x [{s['low']:.2f}-{s['high']:.2f}]"
        rows.append([a["name"] + ("" if a["trained"] else " (untrained)"), a["backend"], a["precision"],
                     f"{a['size_mb']:.1f}", f"{a['load_s']:.2f}", _fmt(a["mem_mb"], "{:.0f}"),
                     f"{one['p50']:.1f}", f"{one['p90']:.1f}", f"{one['p99']:.1f}", f"{many['p50']:.1f}", ratio,
                     _accuracy_cell(a["accuracy"]),
                     f"{a['e2e_ms']['p50']:.1f}" if a["e2e_ms"] else "-"])
    return header, rows


def render_table(results: dict) -> str:
    return format_table(*table_rows(results))


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def _accuracy_cell(accuracy: dict) -> str:
    if accuracy["wholebody"] is None:
        return "-"
    mark = " (agreement)" if accuracy["metric"] == "agreement" else ""
    return f"{100 * accuracy['wholebody']:.1f}{mark}"


def machine_line(machine: dict) -> str:
    libraries = ", ".join(f"{k} {machine['libraries'][k]}" for k in LIBRARIES if k in machine["libraries"])
    return (f"{machine['cpu']} ({machine['arch']}, {machine['cores']} cores; ISA: {', '.join(machine['isa']) or '-'}; "
            f"VNNI: {'yes' if machine['vnni'] else 'no'}); {machine['os']}; Python {machine['python']}; {libraries}")


def _settings_line(results: dict) -> str:
    s = results["settings"]
    threads = s["threads"] or "runtime default"
    parts = [f"threads: {threads}", f"batch: 1 and {s['batch']}", f"runs: {s['runs']} after {s['warmup']} warm-up",
             f"device profile: {s['device_profile'] or 'none'}", f"baseline: {s['baseline']}"]
    return "; ".join(parts)


def _notes(results: dict) -> list[str]:
    s = results["settings"]
    notes = [
        "Latency is the network alone (runner.run on a fixed batch), measured in rounds that call every artifact in "
        "turn (A B C A B C ...), so load from other processes hits all of them alike; p50/p90/p99 are over those "
        f"rounds at batch 1, ms/crop is the batch-{s['batch']} median divided by {s['batch']}.",
        f"Speed-up = baseline median / artifact median at batch 1 (above 1: faster than {s['baseline']}); the "
        f"bracket is a {INTERVAL:.0%} paired bootstrap interval over the rounds. Compare ratios, not milliseconds, "
        "between runs on a shared machine.",
        "load s and mem MB are measured in a fresh process per artifact, as an application starting up sees them: "
        "load s is Predictor construction (runtime import, sidecar check, model load and compile); mem MB is the "
        "growth of peak resident memory (/proc VmHWM) while loading the artifact and running one batch.",
    ]
    sources = sorted({a["accuracy"]["source"] for a in results["artifacts"]})
    notes.append("Whole-body AP x100: " + "; ".join(sources) + ". '(agreement)' marks INT8's agreement with FP32's "
                 "own predictions (FP32 = 100 by definition), not accuracy against ground truth.")
    if s["e2e_frame"]:
        f = s["e2e_frame"]
        notes.append(f"e2e ms/frame: detector {f['detector']} + the pose batch of the {f['persons']} person(s) it "
                     f"finds on {f['image']} ({f['size'][0]}x{f['size'][1]}), median per frame.")
    if any(not a["trained"] for a in results["artifacts"]):
        notes.append("UNTRAINED weights: AP and agreement say nothing about the real model's accuracy; size, memory "
                     "and latency are representative (they do not depend on the weights).")
    notes += [f"Not run: {x['name']}: {x['reason']}" for x in results["skipped"]]
    return notes


def render_markdown(devices: Sequence[dict], title: str, plot: bool = True) -> str:
    lines = [f"# {title}", ""]
    for results in devices:
        if len(devices) > 1:
            lines += [f"## {results['label']}", ""]
        lines += [f"Machine: {machine_line(results['machine'])}", "", f"Settings: {_settings_line(results)}", "",
                  render_table(results), "", *(f"- {note}" for note in _notes(results)), ""]
    if plot:
        lines += ["![accuracy against latency](pareto.png)", ""]
    return "\n".join(lines)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:.9em}"
        "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
        "th{background:#f0f0f0}img{max-width:100%;margin-top:1em}.warn{color:#a00;font-weight:bold}")


def render_html(devices: Sequence[dict], title: str, png: bytes | None) -> str:
    """One self-contained page: the tables, the notes and the plot inlined as base64; no external asset."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for results in devices:
        if len(devices) > 1:
            body.append(f"<h2>{html.escape(results['label'])}</h2>")
        header, rows = table_rows(results)
        body += [f"<p>Machine: {html.escape(machine_line(results['machine']))}</p>",
                 f"<p>Settings: {html.escape(_settings_line(results))}</p>", _html_table(header, rows), "<ul>"]
        body += [f"<li{' class=warn' if n.startswith('UNTRAINED') else ''}>{html.escape(n)}</li>"
                 for n in _notes(results)]
        body.append("</ul>")
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        body.append(f'<img alt="accuracy against latency" src="data:image/png;base64,{data}">')
    else:
        body.append("<p>No plot: matplotlib is not installed (pip install 'rtmw-edge[report]').</p>")
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------------------------------------- plot

def plot_pareto(devices: Sequence[dict]) -> bytes | None:
    """Accuracy against batch-1 latency as a PNG, the Pareto front of each device as a step line; None without
    matplotlib (an edge device may lack it: its results.json still merges elsewhere)."""
    try:
        require("matplotlib", "report")
    except MissingExtraError:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    metric = _plot_metric(devices)
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    handles, xs, ys, left_out = [], [], [], []
    for index, results in enumerate(devices):
        points = [(a["latency_ms"]["batch1"]["p50"], _plot_y(a, metric), a) for a in results["artifacts"]]
        where = f"{results['label']}: " if len(devices) > 1 else ""
        left_out += [f"{where}{a['backend']} {a['precision']}" for _, y, a in points if y is None]
        points = [(x, y, a) for x, y, a in points if y is not None]
        colour, marker = DEVICE_STYLES[index % len(DEVICE_STYLES)]
        for rank, (x, y, a) in enumerate(sorted(points, key=lambda p: p[0])):
            style = (colour, marker) if len(devices) > 1 else (BACKEND_COLOURS.get(a["backend"], "k"),
                                                                 PRECISION_MARKERS.get(a["precision"], "o"))
            ax.scatter([x], [y], s=70, c=style[0], marker=style[1], zorder=3, edgecolors="black", linewidths=0.5)
            # neighbours along x take turns above and below their point, so close labels do not overprint
            ax.annotate(f"{a['backend']} {a['precision']}", (x, y), xytext=(6, 6 if rank % 2 == 0 else -14),
                        textcoords="offset points", fontsize=9)
            xs.append(x)
            ys.append(y)
        if points:
            front = _pareto_front([(x, y) for x, y, _ in points])
            front.append((max(x for x, _, _ in points), front[-1][1]))  # the best accuracy holds to the slowest point
            ax.step(*zip(*front, strict=True), where="post", color=colour if len(devices) > 1 else "0.4",
                    linestyle="--", linewidth=1.2, zorder=2)
        if len(devices) > 1:
            handles.append(Line2D([], [], color=colour, marker=marker, linestyle="--", label=results["label"]))
    if len(devices) == 1:
        handles += [Line2D([], [], color=c, marker="o", linestyle="", label=b) for b, c in BACKEND_COLOURS.items()]
        handles += [Line2D([], [], color="0.3", marker=m, linestyle="", label=p) for p, m in PRECISION_MARKERS.items()]
        handles.append(Line2D([], [], color="0.4", linestyle="--", label="Pareto front"))
    if xs and max(xs) / min(xs) > LOG_X_SPREAD:
        ax.set_xscale("log")
    if ys and max(ys) - min(ys) < 1.0:  # one accuracy for all (untrained, or nothing measured): no hair-thin axis
        ax.set_ylim(min(ys) - 5.0, max(ys) + 5.0)
    ax.margins(x=0.1)  # room for the labels of the outermost points
    ax.set_xlabel("latency per crop at batch 1, median ms (lower is better)")
    ax.set_ylabel(_Y_LABELS[metric])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=handles, loc="best", fontsize=9)
    ax.set_title(_plot_title(devices, left_out), fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


_Y_LABELS = {"ap": "whole-body AP x100 (higher is better)",
             "agreement": "agreement with FP32: whole-body OKS AP x100 (higher is better)",
             None: "accuracy not measured (bench with --eval)"}


_METRIC_NAMES = {"ap": "AP measured", "agreement": "agreement measured", None: "accuracy"}


def _plot_metric(devices: Sequence[dict]) -> str | None:
    """AP when any artifact has it (agreement is another scale and is then left out), else agreement, else none."""
    metrics = {a["accuracy"]["metric"] for results in devices for a in results["artifacts"]}
    return "ap" if "ap" in metrics else "agreement" if "agreement" in metrics else None


def _plot_y(artifact: dict, metric: str | None) -> float | None:
    if metric is None:
        return 0.0
    accuracy = artifact["accuracy"]
    return 100.0 * accuracy["wholebody"] if accuracy["metric"] == metric else None


def _pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (faster and more accurate), fastest first."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def _plot_title(devices: Sequence[dict], left_out: Sequence[str]) -> str:
    models = sorted({a["model"] for results in devices for a in results["artifacts"]})
    if len(devices) == 1:
        machine = devices[0]["machine"]
        threads = devices[0]["settings"]["threads"] or "default"
        where = f"{devices[0]['label']}: {machine['cpu']}, {machine['cores']} cores, {threads} threads"
    else:
        where = " vs ".join(results["label"] for results in devices)
    lines = [f"{', '.join(models)}: accuracy against latency — {where}"]
    if any(not a["trained"] for results in devices for a in results["artifacts"]):
        lines.append("UNTRAINED weights: the accuracy figures are not the real model's; latency is representative")
    if left_out:
        lines.append(f"not plotted (no {_METRIC_NAMES[_plot_metric(devices)]}): {', '.join(sorted(set(left_out)))}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- writing

def write_bench(results: dict, out: Path, overwrite: bool = False) -> None:
    """results.json, report.md, report.html and pareto.png of one bench run, each written atomically."""
    title = f"rtmw-edge bench: {results['label']}"
    png = plot_pareto([results])
    _write(out, {"results.json": json.dumps(results, indent=2) + "\n", **_reports([results], title, png)}, overwrite)


def merge_results(paths: Sequence[str | Path], out: str | Path, overwrite: bool = False) -> str:
    """Several devices' results.json in one comparison: a table per device, one plot; returns the tables."""
    devices = [_read_results(Path(p)) for p in paths]
    seen: dict[str, int] = {}
    for results in devices:  # two runs on one machine get the same default label
        seen[results["label"]] = seen.get(results["label"], 0) + 1
        if seen[results["label"]] > 1:
            results["label"] = f"{results['label']} ({seen[results['label']]})"
    out = Path(out)
    _check_free(out, REPORT_FILES, overwrite)
    title = "rtmw-edge bench: " + " vs ".join(r["label"] for r in devices)
    _write(out, _reports(devices, title, plot_pareto(devices)), overwrite)
    return "\n\n".join(f"{r['label']}: {machine_line(r['machine'])}\n{render_table(r)}" for r in devices)


def _read_results(path: Path) -> dict:
    try:
        results = json.loads(path.read_text())
    except OSError as exc:
        raise RtmwEdgeError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise RtmwEdgeError(f"{path} is not JSON ({exc})") from exc
    if not isinstance(results, dict) or results.get("format") != FORMAT:
        raise RtmwEdgeError(f"{path} is not a results.json written by rtmw-edge bench ({FORMAT})")
    return results


def _reports(devices: Sequence[dict], title: str, png: bytes | None) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {"report.md": render_markdown(devices, title, png is not None),
                                     "report.html": render_html(devices, title, png)}
    if png is not None:
        files["pareto.png"] = png
    return files


def _write(out: Path, files: Mapping[str, str | bytes], overwrite: bool) -> None:
    ensure_writable_dir(out)
    for name, content in files.items():
        with atomic_file(out / name, overwrite=overwrite) as tmp:
            if isinstance(content, bytes):
                tmp.write_bytes(content)
            else:
                tmp.write_text(content)
