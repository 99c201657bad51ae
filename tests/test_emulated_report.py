"""An emulated bench run (qemu-user, `make arm64-check`) is marked in its report and never plotted beside a real
machine's latencies. tests/data/x86-bench-results.json is the x86 bench that `make arm64-check` wrote."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rtmw_edge.bench import read_results
from rtmw_edge.bench.plot import comparable_latencies
from rtmw_edge.bench.render import machine_line, render_markdown
from rtmw_edge.cli import main

X86 = Path(__file__).parent / "data" / "x86-bench-results.json"


def _emulated():
    real = read_results(X86)
    machine = dataclasses.replace(real.machine, arch="aarch64", emulated="qemu-user")
    return real, dataclasses.replace(real, label="raspberry-pi (emulated)", machine=machine)


def test_an_emulated_run_says_so_in_its_machine_line_and_notes():
    real, emulated = _emulated()
    assert real.machine.emulated is None and not machine_line(real.machine).startswith("EMULATED")
    assert machine_line(emulated.machine).startswith("EMULATED: ")
    assert "- EMULATED (qemu-user): the timings are the emulator's" in render_markdown([emulated], "t")


def test_merge_never_plots_emulated_latencies_beside_a_real_machines(tmp_path):
    real, emulated = _emulated()
    assert comparable_latencies([real, emulated]) == ([real], ["raspberry-pi (emulated)"])
    assert comparable_latencies([emulated]) == ([emulated], [])  # alone it is plotted, its title says EMULATED
    (tmp_path / "arm").mkdir()
    (tmp_path / "arm" / "results.json").write_text(emulated.to_json())
    assert read_results(tmp_path / "arm" / "results.json").machine.emulated == "qemu-user"
    out = tmp_path / "merged"
    assert main(["report", "merge", str(X86), str(tmp_path / "arm" / "results.json"), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert markdown.count("Machine: EMULATED: ") == 1 and markdown.count("Machine: ") == 2
