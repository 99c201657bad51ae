"""An emulated bench run (qemu-user, `make arm64-check`) is marked in its report and never plotted beside a real
machine's latencies. tests/data holds what the last `make arm64-check` wrote: the x86 bench
(x86-bench-results.json), the aarch64 bench run by the Raspberry Pi kit's run_benchmark.sh in the emulated root
(aarch64-bench-results.json) and the keypoint agreement of the two (arm64-agreement.json)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rtmw_edge.bench import read_results
from rtmw_edge.bench.plot import comparable_latencies
from rtmw_edge.bench.render import machine_line, render_markdown
from rtmw_edge.cli import main

DATA = Path(__file__).parent / "data"
X86 = DATA / "x86-bench-results.json"
AARCH64 = DATA / "aarch64-bench-results.json"
AGREEMENT = DATA / "arm64-agreement.json"


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


def test_the_last_arm64_check_ran_the_kit_on_aarch64_with_x86s_fp32_keypoints():
    import json

    arm, x86 = read_results(AARCH64), read_results(X86)
    assert arm.machine.arch == "aarch64" and arm.machine.emulated == "qemu-user" and x86.machine.arch == "x86_64"
    assert sorted(a.name for a in arm.artifacts) == sorted(a.name for a in x86.artifacts)  # every artifact ran
    agreement = json.loads(AGREEMENT.read_text())
    assert agreement["failed"] == [] and agreement["machine"]["arch"] == "aarch64"
    fp32 = [row for row in agreement["artifacts"] if row["precision"] == "fp32"]
    assert fp32 and all(row["within_one_bin_or_tie"] == 1.0 for row in fp32)
    assert {row["precision"] for row in agreement["artifacts"]} >= {"fp32", "int8"}


def test_the_last_arm64_checks_pair_merges_into_one_report_with_the_emulated_run_marked(tmp_path):
    out = tmp_path / "merged"
    assert main(["report", "merge", str(X86), str(AARCH64), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert markdown.count("Machine: EMULATED: ") == 1 and markdown.count("Machine: ") == 2
