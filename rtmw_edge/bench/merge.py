"""`rtmw-edge report merge`: several devices' results.json in one report, a table per device and one plot."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from rtmw_edge.bench.output import REPORT_FILES, check_free, report_files, write_files
from rtmw_edge.bench.render import machine_line, render_table
from rtmw_edge.bench.results import BenchResults, read_results
from rtmw_edge.errors import RtmwEdgeError


def merge_results(paths: Sequence[str | Path], out: str | Path, overwrite: bool = False) -> str:
    """Write the merged reports into `out`; returns the tables, each under its device's machine line."""
    paths = [Path(p) for p in paths]
    _refuse_repeats(paths)
    devices = _distinct_labels([read_results(p) for p in paths])
    out = Path(out)
    check_free(out, REPORT_FILES, overwrite)
    title = "rtmw-edge bench: " + " vs ".join(r.label for r in devices)
    write_files(out, report_files(devices, title), overwrite)
    return "\n\n".join(f"{r.label}: {machine_line(r.machine)}\n{render_table(r)}" for r in devices)


def _refuse_repeats(paths: Sequence[Path]) -> None:
    """One file given twice (maybe by two paths, or a link) would show one device as two."""
    seen: dict[tuple[int, int], Path] = {}
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue  # read_results says why in its one line
        first = seen.setdefault((stat.st_dev, stat.st_ino), path)
        if first is not path:
            twice = f"{path} is given twice" if os.path.abspath(first) == os.path.abspath(path) \
                else f"{first} and {path} are the same file"
            raise RtmwEdgeError(f"{twice}: give each device's results.json once")


def _distinct_labels(devices: Sequence[BenchResults]) -> list[BenchResults]:
    """Two runs on one machine get the same default label: the second becomes 'label (2)'."""
    seen: dict[str, int] = {}
    renamed = []
    for results in devices:
        seen[results.label] = seen.get(results.label, 0) + 1
        count = seen[results.label]
        renamed.append(results if count == 1 else dataclasses.replace(results, label=f"{results.label} ({count})"))
    return renamed
