"""The output folder of `bench` and `report merge`: refused early when it holds results, written all at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rtmw_edge.bench.plot import plot_pareto
from rtmw_edge.bench.render import render_html, render_markdown
from rtmw_edge.bench.results import RESULTS_FILE, BenchResults
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.fileio import atomic_dir, atomic_file

REPORT_FILES = ("report.md", "report.html", "pareto.png")
BENCH_FILES = (RESULTS_FILE, *REPORT_FILES)


def check_free(out: Path, names: Sequence[str], overwrite: bool) -> None:
    """Refuse before measuring, not after minutes of it, when results would be overwritten unasked."""
    if out.exists() and not out.is_dir():
        raise RtmwEdgeError(f"{out} is not a folder")
    taken = [name for name in names if (out / name).exists()]
    if taken and not overwrite:
        raise RtmwEdgeError(f"{out / taken[0]} already exists (use --overwrite to replace it)")


def write_bench(results: BenchResults, out: Path, overwrite: bool = False) -> None:
    """results.json, report.md, report.html and pareto.png of one bench run."""
    title = f"rtmw-edge bench: {results.label}"
    write_files(out, {RESULTS_FILE: results.to_json(), **report_files([results], title)}, overwrite)


def report_files(devices: Sequence[BenchResults], title: str) -> dict[str, str | bytes]:
    """The reports of one or more devices; the plot only where matplotlib is installed."""
    png = plot_pareto(devices)
    files: dict[str, str | bytes] = {"report.md": render_markdown(devices, title, png is not None),
                                     "report.html": render_html(devices, title, png)}
    if png is not None:
        files["pareto.png"] = png
    return files


def write_files(out: Path, files: Mapping[str, str | bytes], overwrite: bool) -> None:
    """A new folder appears complete or not at all; in an existing one, each file is replaced atomically."""
    if out.exists():
        for name, content in files.items():
            with atomic_file(out / name, overwrite=overwrite) as tmp:
                _write(tmp, content)
        return
    with atomic_dir(out) as tmp:
        for name, content in files.items():
            _write(tmp / name, content)


def _write(path: Path, content: str | bytes) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
