"""`rtmw-edge bench` and `report merge`: real runtimes on two small untrained artifacts, few rounds.

No timing is asserted: the machine is shared. What is asserted is what the reports contain, that rounds alternate
between artifacts, that ratios are taken against the baseline asked for, and that profiles reach the runners.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from oracle import MINI_DIR, MODELS_DIR, need

from rtmw_edge.artifact import load_artifact
from rtmw_edge.backends import BACKENDS, usable_cores
from rtmw_edge.bench import FORMAT, BenchResults, Figures, read_results
from rtmw_edge.bench.accuracy import recorded_accuracy
from rtmw_edge.bench.measure import measure_latency
from rtmw_edge.bench.plot import UNKNOWN_COLOUR, backend_colour
from rtmw_edge.bench.run import choose_baseline, find_pose_artifacts, plan
from rtmw_edge.bench.timing import speedup
from rtmw_edge.cli import main
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.predictor import Predictor
from rtmw_edge.profiles import load_profile, shipped_profiles

ONNX = "rtmw-m-256x192-onnxruntime-fp32"
OPENVINO = "rtmw-m-256x192-openvino-fp32"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RUNS = 3


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder holding an ONNX and an OpenVINO FP32 artifact, as `rtmw-edge export` leaves them."""
    from rtmw_edge.exporter import export_model

    folder = tmp_path_factory.mktemp("exports")
    for fmt in ("onnx", "openvino"):
        export_model("rtmw-m", fmt, "fp32", weights="untrained", out_dir=folder, progress=False)
    return folder


@pytest.fixture(scope="module")
def two_devices(exports: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two bench runs standing in for two devices: 1 thread with a detector; 2 threads under a profile."""
    gt = str(need(MINI_DIR / "example_wholebody_val.json"))
    detector = str(need(MODELS_DIR / "rtmdet-nano.onnx"))
    out = tmp_path_factory.mktemp("bench")
    common = ["bench", str(exports), "--runs", str(RUNS), "--batch", "2", "--eval", gt]
    assert main([*common, "--threads", "1", "--detector", detector, "--label", "one-thread",
                 "--out", str(out / "one")]) == 0
    assert main([*common, "--threads", "2", "--device-profile", "intel-cpu", "--baseline", OPENVINO,
                 "--label", "two-threads", "--out", str(out / "two")]) == 0
    return out / "one", out / "two"


def _results(folder: Path) -> BenchResults:
    return read_results(folder / "results.json")


def _by_name(results: BenchResults) -> dict[str, Figures]:
    return {a.name: a for a in results.artifacts}


def _one_line_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    """The stderr of a refused command: one line, its own prefix, no traceback; returns that line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"rtmw-edge {command}: error:"), err
    return err[0]


def _is_png(data: bytes) -> bool:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return data.startswith(PNG_MAGIC) and image is not None and image.shape[1] >= 600


def test_results_json_holds_the_machine_the_settings_and_every_figure(two_devices):
    results = _results(two_devices[0])
    machine = results.machine
    assert machine.cpu and machine.cores >= 1 and isinstance(machine.vnni, bool) and machine.flags
    assert {"onnxruntime", "openvino", "python"} <= set(machine.libraries) and machine.os
    assert (results.settings.runs, results.settings.batch, results.settings.threads) == (RUNS, 2, 1)
    assert results.settings.frame.persons >= 1
    artifacts = _by_name(results)
    assert set(artifacts) == {ONNX, OPENVINO}
    for a in artifacts.values():
        assert a.trained is False and a.label.endswith("(untrained)")
        assert a.size_mb > 100 and a.load_s > 0 and a.mem_mb > 50  # an FP32 rtmw-m holds 129 MB of weights
        assert set(a.latency_ms) == {1, 2}
        for latency in a.latency_ms.values():
            assert len(latency.runs) == RUNS and 0 < latency.p50 <= latency.p90 <= latency.p99
        assert a.speedup.low <= a.speedup.value <= a.speedup.high
        assert a.accuracy.metric == "ap" and len(a.accuracy.parts) == 6
        assert len(a.e2e_ms.runs) == RUNS and a.e2e_ms.p50 > 0
        assert a.options == {"threads": 1, "device": None}


def test_results_json_reads_back_into_equal_dataclasses_and_the_same_text(two_devices, tmp_path):
    path = two_devices[0] / "results.json"
    results = read_results(path)
    assert json.loads(path.read_text())["format"] == FORMAT == "rtmw-edge-bench/3"
    assert results.to_json() == path.read_text()
    copy = tmp_path / "results.json"
    copy.write_text(results.to_json())
    assert read_results(copy) == results and BenchResults.from_json(results.to_json()) == results


def test_reports_mark_untrained_weights_and_embed_the_plot(two_devices):
    folder = two_devices[0]
    markdown = (folder / "report.md").read_text()
    assert f"| {ONNX} (untrained)" in markdown and "UNTRAINED weights" in markdown
    assert "e2e ms/frame" in markdown and "![accuracy against latency](pareto.png)" in markdown
    page = (folder / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == 1 and _is_png(base64.b64decode(embedded[0]))
    assert not re.search(r'(src|href)="(?!data:)', page), "report.html must not load anything from outside"
    assert "(untrained)" in page and _is_png((folder / "pareto.png").read_bytes())


def test_speedups_are_ratios_of_medians_against_the_chosen_baseline(two_devices):
    for folder, baseline, other in ((two_devices[0], ONNX, OPENVINO), (two_devices[1], OPENVINO, ONNX)):
        results = _results(folder)
        artifacts = _by_name(results)
        assert results.settings.baseline == baseline
        assert artifacts[baseline].speedup.value == pytest.approx(1.0)
        expected = np.median(artifacts[baseline].latency_ms[1].runs) / np.median(artifacts[other].latency_ms[1].runs)
        assert artifacts[other].speedup.value == pytest.approx(expected, rel=1e-3)


def test_paired_bootstrap_interval_brackets_the_ratio_of_medians():
    assert speedup(np.array([2.0, 2.0, 2.0]), np.array([1.0, 1.0, 1.0])) == (2.0, 2.0, 2.0)
    rng = np.random.default_rng(1)
    base = 10 + rng.normal(0, 1, 40)
    ratio, low, high = speedup(base, base / 3)
    assert ratio == pytest.approx(3.0) and low == pytest.approx(3.0) and high == pytest.approx(3.0)
    ratio, low, high = speedup(base, 5 + rng.normal(0, 1, 40))
    assert low < ratio < high and 1.5 < ratio < 2.5
    with pytest.raises(ValueError):
        speedup(base, base[:5])


def test_every_round_runs_each_artifact_once_in_a_new_order(exports):
    """The scheduler, observed through the runners: every round runs each artifact and batch once, and the order
    changes between rounds (a fixed one would let one artifact always follow a runtime that keeps spinning)."""
    calls: list[tuple[str, int]] = []

    class Recorded:
        def __init__(self, runner, name: str) -> None:
            self.runner, self.name = runner, name

        def run(self, batch: np.ndarray) -> list[np.ndarray]:
            calls.append((self.name, len(batch)))
            return self.runner.run(batch)

    predictors = {}
    for name in ("A", "B"):
        predictor = Predictor(exports / (ONNX if name == "A" else OPENVINO), threads=1)
        predictor.runner = Recorded(predictor.runner, name)
        predictors[name] = predictor
    times = measure_latency(predictors, batch=2, runs=RUNS, warmup=0)
    rounds = [tuple(calls[i:i + 4]) for i in range(0, len(calls), 4)]
    assert len(rounds) == RUNS and all(sorted(r) == [("A", 1), ("A", 2), ("B", 1), ("B", 2)] for r in rounds)
    assert len(set(rounds)) > 1
    assert {k: sorted(v) for k, v in times.items()} == {"A": ["batch1", "batch2"], "B": ["batch1", "batch2"]}


def test_report_merge_puts_two_devices_in_one_comparison(two_devices, tmp_path, capsys):
    merged = tmp_path / "merged"
    assert main(["report", "merge", *(str(f / "results.json") for f in two_devices), "--out", str(merged)]) == 0
    markdown = (merged / "report.md").read_text()
    assert markdown.count("## one-thread") == 1 and markdown.count("## two-threads") == 1
    assert markdown.count(f"| {ONNX} (untrained)") == 2
    page = (merged / "report.html").read_text()
    assert page.count("<h2>") == 2 and page.count("data:image/png;base64,") == 1
    assert _is_png((merged / "pareto.png").read_bytes())
    assert "one-thread" in capsys.readouterr().out


def test_a_profile_orders_backends_and_reaches_the_runners(two_devices):
    results = _results(two_devices[1])
    assert results.settings.device_profile == "intel-cpu" and results.label == "two-threads"
    assert [a.name for a in results.artifacts] == [OPENVINO, ONNX]  # intel-cpu runs OpenVINO first
    assert _by_name(results)[OPENVINO].options == {"threads": 2, "device": "CPU"}
    assert _by_name(results)[ONNX].options == {"threads": 2, "device": "cpu"}


def test_every_shipped_profile_parses_and_applies(exports):
    artifacts = find_pose_artifacts([exports])
    assert set(shipped_profiles()) == {"raspberry-pi", "jetson", "intel-cpu"}
    for name in shipped_profiles():
        profile = load_profile(name)
        planned, skipped = plan(artifacts, profile, threads=None)
        backends = [p.artifact.meta.backend for p in planned]
        assert backends == sorted(backends, key=profile.backends.index)
        assert {s.name for s in skipped} == {p.folder.name for p in artifacts
                                               if p.meta.backend not in profile.backends}
        for item in planned:
            backend = item.artifact.meta.backend
            assert item.options == {"threads": profile.cores(), "device": profile.devices.get(backend)}
        assert all(p.options["threads"] == 3 for p in plan(artifacts, profile, threads=3)[0])
    jetson = plan(artifacts, load_profile("jetson"))[0]
    assert [(p.name, p.options["device"]) for p in jetson] == [(ONNX, "tensorrt,cuda,cpu")]
    assert load_profile("raspberry-pi").runner_options("ncnn") == {"threads": min(4, usable_cores()), "device": "cpu"}


def test_default_baseline_is_the_first_fp32_artifact_of_the_reference_backend(exports):
    artifacts = find_pose_artifacts([exports / OPENVINO, exports])
    names = [a.folder.name for a in artifacts]
    assert names == [OPENVINO, ONNX]
    assert choose_baseline(names, artifacts) == 1
    assert choose_baseline(names, artifacts, OPENVINO) == 0
    with pytest.raises(RtmwEdgeError, match=ONNX):
        choose_baseline(names, artifacts, "rtmw-x")


def test_bad_profiles_fail_in_one_line(exports, tmp_path, capsys):
    with pytest.raises(RtmwEdgeError) as bad_name:
        load_profile("no-such-device")
    assert "\n" not in str(bad_name.value) and "intel-cpu" in str(bad_name.value)
    typo = tmp_path / "typo.toml"
    typo.write_text('backends = ["openvino"]\nthread = 4\n')
    with pytest.raises(RtmwEdgeError, match="unknown key 'thread'"):
        load_profile(typo)
    assert main(["bench", str(exports), "--device-profile", "no-such-device", "--out", str(tmp_path / "o")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("what", ["empty folder", "non-artifact file", "missing path"])
def test_nothing_to_bench_is_one_clear_line_and_exit_2(what, tmp_path, capsys):
    path = {"empty folder": tmp_path / "empty", "non-artifact file": tmp_path / "notes.txt",
            "missing path": tmp_path / "nowhere"}[what]
    if what == "empty folder":
        path.mkdir()
    elif what == "non-artifact file":
        path.write_text("not a model")
    assert main(["bench", str(path), "--out", str(tmp_path / "out")]) == 2
    assert str(path) in _one_line_error(capsys, "bench")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("flag", "value"), [("--runs", "0"), ("--batch", "0"), ("--runs", "-3")])
def test_a_count_below_1_is_one_line_and_exit_2_and_writes_nothing(flag, value, exports, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["bench", str(exports), flag, value, "--out", str(out)]) == 2
    assert f"{flag} must be at least 1, got {value}" in _one_line_error(capsys, "bench")
    assert not out.exists()


@pytest.mark.parametrize("what", ["missing --eval", "missing --detector", "unknown --baseline"])
def test_a_failed_bench_is_one_line_and_leaves_no_output_folder(what, exports, tmp_path, capsys):
    extra = {"missing --eval": ["--eval", str(tmp_path / "no.json")],
             "missing --detector": ["--detector", str(tmp_path / "no.onnx")],
             "unknown --baseline": ["--baseline", "rtmw-x"]}[what]
    assert main(["bench", str(exports), "--runs", "1", *extra, "--out", str(tmp_path / "deep" / "out")]) == 2
    _one_line_error(capsys, "bench")
    assert not (tmp_path / "deep").exists()


@pytest.mark.parametrize(("what", "content", "says"), [
    ("foreign JSON", {"accuracy": {}}, "not a results.json written by rtmw-edge bench (rtmw-edge-bench/3)"),
    ("older version", {"format": "rtmw-edge-bench/1", "label": "x"}, "from another rtmw-edge version"),
    ("damaged", {"format": "rtmw-edge-bench/3", "label": "x"}, "damaged results.json"),
    ("a list", [1, 2], "not a results.json written by rtmw-edge bench"),
    ("not JSON", "{", "is not JSON"),
])
def test_merge_of_what_is_not_this_versions_results_is_one_line(what, content, says, tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    assert main(["report", "merge", str(path), "--out", str(tmp_path / "m")]) == 2
    assert says in _one_line_error(capsys, "report")
    assert not (tmp_path / "m").exists()


def test_merge_refuses_one_results_json_given_twice_by_any_path(two_devices, tmp_path, capsys):
    path = two_devices[0] / "results.json"
    link = tmp_path / "link.json"
    link.symlink_to(path)
    for again in (path, two_devices[0] / ".." / two_devices[0].name / "results.json", link):
        assert main(["report", "merge", str(path), str(two_devices[1] / "results.json"), str(again),
                     "--out", str(tmp_path / "m")]) == 2
        assert "give each device's results.json once" in _one_line_error(capsys, "report")
        assert not (tmp_path / "m").exists()


def _record(artifact, metric: str, parts: dict[str, float], backend: str | None = None):
    """A quantization record of `artifact` as `rtmw-edge quantize` writes it, with made-up figures."""
    from rtmw_edge.quantization.gate import Budget, Verdict
    from rtmw_edge.quantization.record import (
        Accuracy,
        ArtifactFacts,
        Artifacts,
        CalibrationFacts,
        Evaluation,
        Machine,
        Pair,
        QuantizationRecord,
        Recommendation,
    )

    facts = ArtifactFacts(f"{artifact.folder.name}/{artifact.meta.main_file}", "fp32", 1.0, False)
    return QuantizationRecord(
        model=artifact.meta.model, backend=backend or artifact.meta.backend, trained=False, weights={}, recipe={},
        calibration=CalibrationFacts("0" * 64, 1, 0, "made up", ["a#0"]),
        evaluation=Evaluation(metric, "agreement with FP32"), budget=Budget(1.0, 2.0),
        artifacts=Artifacts(facts, facts), accuracy=Accuracy(parts, parts), kept_float=[], reverted_to_float=[],
        reverted_layers=[], attempts=[], latency_ms=Pair(1.0, 1.0), sensitivity=None,
        verdicts={"pose": Verdict(None, {}, "untrained")}, machine=Machine("cpu", False, []), tools={},
        recommended=Recommendation("fp32", "made up"))


@pytest.mark.parametrize(("metric", "backend", "shown"), [
    ("agreement", None, "agreement"),  # the record's own field decides
    ("ap", None, "ap"),
    ("ap", "elsewhere", None),  # a record of another backend's artifacts
])
def test_the_quantization_record_says_which_metric_its_accuracy_is(metric, backend, shown, exports, tmp_path):
    link = tmp_path / ONNX  # the artifact, beside a record of its own
    link.symlink_to(exports / ONNX)
    artifact = load_artifact(link, verify=False)
    parts = {"wholebody": 0.5, "body": 0.6}
    _record(artifact, metric, parts, backend).write(tmp_path / "quantization.json")
    accuracy = recorded_accuracy(artifact)
    if shown is None:
        assert accuracy is None
    else:
        assert (accuracy.metric, accuracy.wholebody, accuracy.parts) == (shown, 0.5, parts)
        assert accuracy.source == "quantization record: agreement with FP32"


def test_a_damaged_quantization_record_shows_no_accuracy(exports, tmp_path):
    link = tmp_path / ONNX
    link.symlink_to(exports / ONNX)
    (tmp_path / "quantization.json").write_text('{"accuracy": {}, "verdicts": {}}')
    assert recorded_accuracy(load_artifact(link, verify=False)) is None


def test_each_backend_of_the_table_has_its_own_plot_colour():
    colours = [backend_colour(b) for b in BACKENDS]
    assert len(set(colours)) == len(colours) and UNKNOWN_COLOUR not in colours
    assert backend_colour("no-such-backend") == UNKNOWN_COLOUR


def test_existing_results_are_kept_unless_overwrite_is_asked(two_devices, exports, capsys):
    before = (two_devices[0] / "results.json").read_bytes()
    assert main(["bench", str(exports), "--out", str(two_devices[0]), "--runs", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (two_devices[0] / "results.json").read_bytes() == before


def test_bench_runs_the_precisions_this_cpu_computes_and_names_the_flag_of_the_others(exports, tmp_path):
    """bf16 and fp16 artifacts beside FP32: those this CPU computes are rows, the others are listed as not run
    with the CPU flag they need; the profile's choice runs first and is named in the report."""
    import shutil

    from rtmw_edge.artifact import write_metadata
    from rtmw_edge.machine import cpu_flags
    from rtmw_edge.quantization.floats import derive_artifact

    fp32, backend = load_artifact(exports / OPENVINO), BACKENDS["openvino"]
    folder = tmp_path / "set"
    folder.mkdir()
    shutil.copytree(fp32.folder, folder / OPENVINO)  # copies: bench does not follow links
    made, lacking = [], []
    for precision in ("bf16", "fp16"):
        if backend.lacks(precision, cpu_flags()):  # made on a CPU that computes it, brought to this one
            copy = folder / f"rtmw-m-256x192-openvino-{precision}"
            shutil.copytree(fp32.folder, copy)
            meta = load_artifact(copy).meta
            meta.precision = precision
            write_metadata(copy, meta)
            lacking.append(precision)
        else:
            derive_artifact(fp32, precision, folder)
            made.append(precision)
    out = tmp_path / "bench"
    assert main(["bench", str(folder), "--runs", "2", "--batch", "2", "--device-profile", "intel-cpu",
                 "--out", str(out)]) == 0
    results = _results(out)
    assert sorted(a.precision for a in results.artifacts) == sorted(["fp32", *made]) and lacking
    reasons = {s.name: s.reason for s in results.skipped}
    for precision in lacking:
        assert backend.arithmetic[precision].needs[0] in reasons[f"rtmw-m-256x192-openvino-{precision}"]
    (preferred,) = results.recommended
    assert preferred.backend == "openvino" and preferred.precision in ("bf16", "int8")
    if preferred.precision in made:
        assert results.artifacts[0].precision == preferred.precision
    report = (out / "report.md").read_text()
    assert f"Device profile intel-cpu prefers openvino {preferred.precision} on this CPU" in report
    assert all(f"Not run: rtmw-m-256x192-openvino-{p}" in report for p in lacking)

