"""Bench results as text: the one table, and the Markdown and self-contained HTML reports around it."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from rtmw_edge.backends import BACKENDS
from rtmw_edge.bench.results import Accuracy, BenchResults
from rtmw_edge.machine import Machine
from rtmw_edge.table import format_table

LIBRARIES = (*(p for b in BACKENDS.values() for p in b.packages), "numpy")  # the versions the machine line shows


def table_rows(results: BenchResults) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the one table: one row per artifact, every figure a reader compares."""
    s = results.settings
    header = ["artifact", "backend", "precision", "size MB", "load s", "mem MB", "p50 ms", "p90 ms", "p99 ms",
              f"ms/crop @b{s.batch}", f"speed-up [{s.interval:.0%} CI]", "whole-body AP", "e2e ms/frame",
              "video fps" + (f" (det every {s.video.det_every})" if s.video else "")]
    rows = []
    for a in results.artifacts:
        one, many, ratio = a.latency_ms[1], a.latency_ms[s.batch], a.speedup
        speed = ("1.00x (baseline)" if a.name == s.baseline
                 else f"{ratio.value:.2f}x [{ratio.low:.2f}-{ratio.high:.2f}]")
        rows.append([a.name + ("" if a.trained else " (untrained)"), a.backend, a.precision,
                     f"{a.size_mb:.1f}", f"{a.load_s:.2f}", "n/a" if a.mem_mb is None else f"{a.mem_mb:.0f}",
                     f"{one.p50:.1f}", f"{one.p90:.1f}", f"{one.p99:.1f}", f"{many.p50:.1f}", speed,
                     _accuracy_cell(a.accuracy), f"{a.e2e_ms.p50:.1f}" if a.e2e_ms else "-",
                     f"{a.video_fps.p50:.1f}" if a.video_fps else "-"])
    return header, rows


def render_table(results: BenchResults) -> str:
    return format_table(*table_rows(results))


def _accuracy_cell(accuracy: Accuracy) -> str:
    if accuracy.wholebody is None:
        return "-"
    mark = " (agreement)" if accuracy.metric == "agreement" else ""
    drift = f"; 3D drift {accuracy.drift_3d_mm['wholebody']:.1f} mm" if accuracy.drift_3d_mm else ""
    return f"{100 * accuracy.wholebody:.1f}{mark}{drift}"


def machine_line(machine: Machine) -> str:
    libraries = ", ".join(f"{k} {machine.libraries[k]}" for k in LIBRARIES if k in machine.libraries)
    return ("EMULATED: " if machine.emulated else "") + (
            f"{machine.cpu} ({machine.arch}, {machine.cores} cores; ISA: {', '.join(machine.isa) or '-'}; "
            f"VNNI: {'yes' if machine.vnni else 'no'}); {machine.os}; Python {machine.python}; {libraries}")


def _settings_line(results: BenchResults) -> str:
    s = results.settings
    parts = [f"threads: {s.threads or 'runtime default'}", f"batch: 1 and {s.batch}",
             f"runs: {s.runs} after {s.warmup} warm-up", f"device profile: {s.device_profile or 'none'}",
             f"baseline: {s.baseline}"]
    return "; ".join(parts)


def _notes(results: BenchResults) -> list[str]:
    s = results.settings
    notes = [
        "Latency is the network alone (runner.run on a fixed batch), measured in rounds that call every artifact in "
        "turn (A B C A B C ...), so load from other processes hits all of them alike; p50/p90/p99 are over those "
        f"rounds at batch 1, ms/crop is the batch-{s.batch} median divided by {s.batch}.",
        f"Speed-up = baseline median / artifact median at batch 1 (above 1: faster than {s.baseline}); the "
        f"bracket is a {s.interval:.0%} paired bootstrap interval over the rounds. Compare ratios, not milliseconds, "
        "between runs on a shared machine.",
        "load s and mem MB are measured in a fresh process per artifact, as an application starting up sees them: "
        "load s is Predictor construction (runtime import, sidecar check, model load and compile); mem MB is the "
        "growth of peak resident memory (/proc VmHWM) while loading the artifact and running one batch.",
    ]
    sources = sorted({a.accuracy.source for a in results.artifacts})
    notes.append("Whole-body AP x100: " + "; ".join(sources) + ". '(agreement)' marks INT8's agreement with FP32's "
                 "own predictions (FP32 = 100 by definition), not accuracy against ground truth.")
    if any(a.accuracy.drift_3d_mm for a in results.artifacts):
        notes.append("3D drift (3D models only): the mean per-joint distance of the artifact's camera-space keypoints "
                     "from FP32's after aligning their roots, in mm, from its quantization record.")
    if s.frame:
        f = s.frame
        notes.append(f"e2e ms/frame: detector {f.detector} + the pose batch of the {f.persons} person(s) it "
                     f"finds on {f.image} ({f.width}x{f.height}), median per frame.")
    if s.video:
        v = s.video
        notes.append(f"video fps: frames per second over {v.file} ({v.frames} frames, {v.width}x{v.height}), end "
                     f"to end: decoding on its own thread, detector {v.detector} on one frame in {v.det_every}, the "
                     f"pose batch, tracking and smoothing; the median of {v.rounds} passes interleaved across "
                     "artifacts.")
    if results.machine.emulated:
        notes.append(f"EMULATED ({results.machine.emulated}): the timings are the emulator's, not a "
                     f"{results.machine.arch} device's; they are never plotted beside a real machine's. What this "
                     "run shows is that the artifacts load and compute there, and their keypoints.")
    if any(not a.trained for a in results.artifacts):
        notes.append("UNTRAINED weights: AP and agreement say nothing about the real model's accuracy; size, memory "
                     "and latency are representative (they do not depend on the weights).")
    notes += [f"Device profile {s.device_profile} prefers {r.backend} {r.precision} on this CPU: {r.reason}."
              for r in results.recommended]
    notes += [f"Not run: {x.name}: {x.reason}" for x in results.skipped]
    return notes


def render_markdown(devices: Sequence[BenchResults], title: str, plot: bool = True) -> str:
    lines = [f"# {title}", ""]
    for results in devices:
        if len(devices) > 1:
            lines += [f"## {results.label}", ""]
        lines += [f"Machine: {machine_line(results.machine)}", "", f"Settings: {_settings_line(results)}", "",
                  render_table(results), "", *(f"- {note}" for note in _notes(results)), ""]
    if plot:
        lines += ["![accuracy against latency](pareto.png)", ""]
    return "\n".join(lines)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:.9em}"
        "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
        "th{background:#f0f0f0}img{max-width:100%;margin-top:1em}.warn{color:#a00;font-weight:bold}")


def render_html(devices: Sequence[BenchResults], title: str, png: bytes | None) -> str:
    """One self-contained page: the tables, the notes and the plot inlined as base64; no external asset."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for results in devices:
        if len(devices) > 1:
            body.append(f"<h2>{html.escape(results.label)}</h2>")
        header, rows = table_rows(results)
        body += [f"<p>Machine: {html.escape(machine_line(results.machine))}</p>",
                 f"<p>Settings: {html.escape(_settings_line(results))}</p>", _html_table(header, rows), "<ul>"]
        body += [f"<li{' class=warn' if n.startswith(('UNTRAINED', 'EMULATED')) else ''}>{html.escape(n)}</li>"
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
