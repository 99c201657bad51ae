"""Accuracy against latency as a PNG, with the Pareto front of each device."""

from __future__ import annotations

import io
from collections.abc import Sequence

from rtmw_edge.backends import BACKENDS
from rtmw_edge.bench.results import BenchResults, Figures
from rtmw_edge.errors import MissingExtraError, require

LOG_X_SPREAD = 8.0  # latency axis goes logarithmic when the slowest point is this many times the fastest
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
MARKERS = ("o", "s", "^", "D", "v", "P")  # one per device in a merged plot, with the palette's colour
PRECISION_MARKERS = {"fp32": "o", "bf16": "D", "fp16": "s", "int8": "^"}
UNKNOWN_COLOUR = "k"  # a backend the backend table does not name (results from another rtmw-edge version)


def backend_colour(backend: str) -> str:
    """A colour per backend, by its place in the backend table, so every plot colours a backend alike."""
    return PALETTE[_place(backend) % len(PALETTE)] if backend in BACKENDS else UNKNOWN_COLOUR


def _place(backend: str) -> int:
    names = list(BACKENDS)
    return names.index(backend) if backend in names else len(names)


def plot_pareto(devices: Sequence[BenchResults]) -> bytes | None:
    """Accuracy against batch-1 latency as a PNG, the Pareto front of each device as a step line; None without
    matplotlib (an edge device may lack it: its results.json still merges elsewhere)."""
    try:
        require("matplotlib", "report")
    except MissingExtraError:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    devices, emulated = comparable_latencies(devices)
    metric = _plot_metric(devices)
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    handles, xs, ys, left_out = [], [], [], []
    for index, results in enumerate(devices):
        points = [(a.latency_ms[1].p50, _plot_y(a, metric), a) for a in results.artifacts]
        where = f"{results.label}: " if len(devices) > 1 else ""
        left_out += [f"{where}{a.backend} {a.precision}" for _, y, a in points if y is None]
        points = [(x, y, a) for x, y, a in points if y is not None]
        colour, marker = PALETTE[index % len(PALETTE)], MARKERS[index % len(MARKERS)]
        for rank, (x, y, a) in enumerate(sorted(points, key=lambda p: p[0])):
            style = (colour, marker) if len(devices) > 1 else (backend_colour(a.backend),
                                                                 PRECISION_MARKERS.get(a.precision, "o"))
            ax.scatter([x], [y], s=70, c=style[0], marker=style[1], zorder=3, edgecolors="black", linewidths=0.5)
            # neighbours along x take turns above and below their point, so close labels do not overprint
            ax.annotate(f"{a.backend} {a.precision}", (x, y), xytext=(6, 6 if rank % 2 == 0 else -14),
                        textcoords="offset points", fontsize=9)
            xs.append(x)
            ys.append(y)
        if points:
            front = _pareto_front([(x, y) for x, y, _ in points])
            front.append((max(x for x, _, _ in points), front[-1][1]))  # the best accuracy holds to the slowest point
            ax.step(*zip(*front, strict=True), where="post", color=colour if len(devices) > 1 else "0.4",
                    linestyle="--", linewidth=1.2, zorder=2)
        if len(devices) > 1:
            handles.append(Line2D([], [], color=colour, marker=marker, linestyle="--", label=results.label))
    if len(devices) == 1:
        shown = sorted({a.backend for a in devices[0].artifacts}, key=lambda b: (_place(b), b))
        handles += [Line2D([], [], color=backend_colour(b), marker="o", linestyle="", label=b) for b in shown]
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
    ax.set_title(_plot_title(devices, left_out, emulated), fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


_Y_LABELS = {"ap": "whole-body AP x100 (higher is better)",
             "agreement": "agreement with FP32: whole-body OKS AP x100 (higher is better)",
             None: "accuracy not measured (bench with --eval)"}


_METRIC_NAMES = {"ap": "AP measured", "agreement": "agreement measured", None: "accuracy"}


def comparable_latencies(devices: Sequence[BenchResults]) -> tuple[list[BenchResults], list[str]]:
    """The devices whose latencies share one axis, and the labels of those left out: an emulated run's timings
    measure the emulator, and beside a real machine's they would read as the device's latency."""
    real = [results for results in devices if not results.machine.emulated]
    if not real or len(real) == len(devices):
        return list(devices), []
    return real, [results.label for results in devices if results.machine.emulated]


def _plot_metric(devices: Sequence[BenchResults]) -> str | None:
    """AP when any artifact has it (agreement is another scale and is then left out), else agreement, else none."""
    metrics = {a.accuracy.metric for results in devices for a in results.artifacts}
    return "ap" if "ap" in metrics else "agreement" if "agreement" in metrics else None


def _plot_y(artifact: Figures, metric: str | None) -> float | None:
    if metric is None:
        return 0.0
    accuracy = artifact.accuracy
    return 100.0 * accuracy.wholebody if accuracy.metric == metric and accuracy.wholebody is not None else None


def _pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (faster and more accurate), fastest first."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def _plot_title(devices: Sequence[BenchResults], left_out: Sequence[str], emulated: Sequence[str] = ()) -> str:
    models = sorted({a.model for results in devices for a in results.artifacts})
    if len(devices) == 1:
        machine = devices[0].machine
        threads = devices[0].settings.threads or "default"
        where = f"{devices[0].label}: {machine.cpu}, {machine.cores} cores, {threads} threads"
    else:
        where = " vs ".join(results.label for results in devices)
    lines = [f"{', '.join(models)}: accuracy against latency — {where}"]
    if any(not a.trained for results in devices for a in results.artifacts):
        lines.append("UNTRAINED weights: the accuracy figures are not the real model's; latency is representative")
    if emulated:
        lines.append(f"not plotted: {', '.join(emulated)} (EMULATED: an emulator's latencies, not the device's)")
    elif any(results.machine.emulated for results in devices):
        lines.append("EMULATED: these latencies are an emulator's, not the device's")
    if left_out:
        lines.append(f"not plotted (no {_METRIC_NAMES[_plot_metric(devices)]}): {', '.join(sorted(set(left_out)))}")
    return "\n".join(lines)
