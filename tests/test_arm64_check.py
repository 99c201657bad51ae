"""The last `make arm64-check` (the Raspberry Pi kit on emulated arm64), pinned by the files it wrote: the aarch64
bench's results.json and the keypoint agreement with x86 (tests/data/arm64-check/, copied from arm64-check/)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

from rtmw_edge.bench import read_results
from rtmw_edge.bench.plot import comparable_latencies
from rtmw_edge.bench.render import machine_line, render_markdown
from rtmw_edge.cli import main

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "arm64-check"


def _keypoints_script():
    """runtimes/raspberry-pi/emulate/keypoints.py, whose thresholds the check asserted."""
    spec = importlib.util.spec_from_file_location("keypoints", ROOT / "runtimes/raspberry-pi/emulate/keypoints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_last_arm64_check_ran_on_emulated_aarch64_and_says_so():
    results = read_results(DATA / "results.json")
    assert results.machine.arch == "aarch64" and results.machine.emulated == "qemu-user"
    assert results.label.endswith("(emulated)") and results.settings.device_profile == "raspberry-pi"
    assert machine_line(results.machine).startswith("EMULATED: aarch64 emulated (qemu-user) on ")
    assert "asimd" in results.machine.isa  # the emulated CPU's flags (AT_HWCAP), not the x86 host's
    assert {a.precision for a in results.artifacts} >= {"fp32", "fp16", "int8"}
    assert "- EMULATED (qemu-user): the timings are the emulator's" in render_markdown([results], "t")


def test_the_last_arm64_check_gave_x86s_keypoints_within_what_it_asserts():
    script = _keypoints_script()
    agreement = json.loads((DATA / "agreement.json").read_text())
    assert agreement["format"] == script.FORMAT and agreement["failed"] == []
    assert agreement["machine"]["arch"] == "aarch64" and agreement["machine"]["emulated"] == "qemu-user"
    rows = {(a["backend"], a["precision"]): a for a in agreement["artifacts"]}
    assert {p for _, p in rows} >= {"fp32", "fp16", "int8"}
    for (_, precision), row in rows.items():
        assert row["keypoints"] == 133 * agreement["crops"] > 0
        assert 0.0 <= row["within_one_bin"] <= row["within_one_bin_or_tie"] <= 1.0
        assert row["asserted"] == script.ASSERTED.get(precision)
        if row["asserted"] is not None:
            assert row["within_one_bin_or_tie"] >= row["asserted"]


def test_merge_never_plots_the_emulated_latencies_beside_a_real_machines(tmp_path):
    emulated = read_results(DATA / "results.json")
    real = dataclasses.replace(emulated, label="x86-64", machine=dataclasses.replace(emulated.machine, emulated=None))
    assert comparable_latencies([real, emulated]) == ([real], [emulated.label])
    assert comparable_latencies([emulated]) == ([emulated], [])  # alone it is plotted, its title says EMULATED
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "results.json").write_text(real.to_json())
    out = tmp_path / "merged"
    assert main(["report", "merge", str(tmp_path / "real" / "results.json"), str(DATA / "results.json"),
                 "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert markdown.count("Machine: EMULATED: ") == 1 and markdown.count("Machine: ") == 2
