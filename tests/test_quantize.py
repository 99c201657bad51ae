"""`rtmw-edge quantize`: INT8 artifacts for each backend, a recorded accuracy gate, and honest failures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from oracle import MINI_DIR, MODELS_DIR, need, oracle_npz, oracle_state_dict

from rtmw_edge.artifact import load_artifact
from rtmw_edge.backends import BACKENDS, get_backend, open_runner
from rtmw_edge.backends.base import Tolerance
from rtmw_edge.cli import main
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.exporter import export_model
from rtmw_edge.predictor import Predictor
from rtmw_edge.quantization import QuantizeResult, quantize
from rtmw_edge.quantization.gate import Budget, Verdict, judge, unjudged_reason
from rtmw_edge.quantization.recipe import load_recipe
from rtmw_edge.quantization.record import QuantizationRecord, Recommendation

# A fast recipe for tests: few calibration crops; everything else is the shipped default.
FAST = """
[calibration]
size = 16
[quantizer]
{quantizer}
"""
FAST_QUANTIZER = {"openvino": "subset_size = 16", "onnxruntime": "preprocess = true", "ncnn": 'method = "percentile"'}


def fast_recipe(tmp_path: Path, backend: str, extra: str = "", name: str = "fast") -> Path:
    path = tmp_path / f"{backend}-{name}.toml"
    path.write_text(FAST.format(quantizer=FAST_QUANTIZER[backend]) + extra)
    return path


def run_cli(tmp_path: Path, backend: str, *extra: str, out: str = "q") -> tuple[int, Path]:
    """The CLI with a fast recipe; no float precisions beside INT8 unless `extra` asks for them (openvino_run
    keeps the default, all of them)."""
    extra = extra if "--float-precisions" in extra else ("--float-precisions", *extra)
    code = main(["quantize", "--backend", backend, "--weights", "untrained", "--recipe",
                 str(fast_recipe(tmp_path, backend)), "--out", str(tmp_path / out), "--threads", "2", *extra])
    return code, tmp_path / out / f"rtmw-m-256x192-{backend}"


def quantize_with_detector(tmp_path: Path, backend: str, out: str = "q") -> tuple[int, Path]:
    """Quantize with the trained detector too, judged on the mini set; calibrated honestly, on other images: the
    shipped photos (the detector on scenes composed from them, the recipe's [detector] scenes)."""
    detector = str(need(MODELS_DIR / "rtmdet-nano.onnx"))
    gt = str(need(MINI_DIR / "example_wholebody_val.json"))
    return run_cli(tmp_path, backend, "--detector", detector, "--eval", gt, out=out)


def read_record(folder: Path) -> QuantizationRecord:
    return QuantizationRecord.read(folder / "quantization.json")


def assert_runs_in_the_predictor(folder: Path, fmt: str) -> None:
    predictor = Predictor(folder / f"rtmw-m-256x192-{fmt}-int8", detector=folder / f"rtmdet-nano-{fmt}-int8")
    persons = predictor.predict(cv2.imread(str(need(MINI_DIR / "000000000785.jpg"))))
    assert len(persons) >= 1 and np.isfinite(persons[0].keypoints).all()


@pytest.fixture(scope="module")
def openvino_run(tmp_path_factory) -> tuple[QuantizeResult, Path]:
    """The Python API: untrained rtmw-m and the trained detector, calibrated on the shipped photos (the detector on
    scenes composed from them) and judged on the mini set's images."""
    tmp = tmp_path_factory.mktemp("ov")
    result = quantize("rtmw-m", "openvino", weights="untrained", recipe=fast_recipe(tmp, "openvino"),
                      evaluation=need(MINI_DIR / "example_wholebody_val.json"),
                      detector=need(MODELS_DIR / "rtmdet-nano.onnx"), out=tmp / "q", threads=2, progress=False)
    return result, tmp


def test_openvino_quantize_writes_both_artifacts_a_record_and_a_report_in_one_folder(openvino_run):
    result, tmp = openvino_run
    assert result.folder == tmp / "q" / "rtmw-m-256x192-openvino" and result.passed
    floats = [f"rtmw-m-256x192-openvino-{p}" for p in result.floats]
    assert sorted(p.name for p in result.folder.iterdir()) == sorted([
        "quantization.json", "report.md", "rtmdet-nano-openvino-fp32", "rtmdet-nano-openvino-int8",
        "rtmw-m-256x192-openvino-fp32", "rtmw-m-256x192-openvino-int8", *floats])
    assert result.fp32.folder == result.folder / "rtmw-m-256x192-openvino-fp32"
    assert result.int8.meta.precision == "int8" and result.int8.meta.quantization["gate"] == "not judged"
    assert result.detector_int8.meta.kind == "detector"
    record = read_record(result.folder)
    assert record == result.record  # what was written is what is read back
    assert record.artifacts.int8.size_mb <= 0.30 * record.artifacts.fp32.size_mb
    assert set(record.accuracy.int8) == {"wholebody", "body", "foot", "face", "left_hand", "right_hand"}
    assert record.calibration.size == 16 and len(record.calibration.sha256) == 64 and record.calibration.seed == 0
    assert record.verdicts["pose"].passed is None and record.trained is False
    assert record.evaluation.metric == "ap" and record.budget == Budget(1.0, 2.0)
    assert record.latency_ms.int8 > 0 and isinstance(record.machine.vnni, bool)
    assert record.recipe["quantizer"]["subset_size"] == 16 and record.recipe["gate"]["reference_crops"] == 64
    report = result.report_path.read_text()
    assert "UNTRAINED" in report and "not judged" in report and "| int8" in report
    assert result.fp32.meta.weights["kind"] == "untrained"


def test_float_precisions_sit_beside_int8_one_row_each_or_skipped_with_the_flag_missing(openvino_run):
    """bf16 and fp16 need no calibration, only an instruction set: each is made and scored by the same gate
    where this CPU computes it, and otherwise named with the CPU flag it lacks."""
    from rtmw_edge.machine import cpu_flags

    result = openvino_run[0]
    record, backend = result.record, get_backend("openvino")
    assert set(result.floats) | set(record.skipped_precisions) == {"bf16", "fp16"}
    for precision, reason in record.skipped_precisions.items():
        assert backend.lacks(precision, cpu_flags()) == reason and backend.arithmetic[precision].needs[0] in reason
    for row in record.floats:
        artifact = result.floats[row.precision]
        assert artifact.meta.precision == row.precision == row.computes and row.latency_ms > 0
        assert set(row.accuracy) == set(record.accuracy.int8) and row.verdict.passed is None  # untrained
        assert f"| {row.precision}" in result.table and record.measured()[row.precision].latency_ms == row.latency_ms
    from rtmw_edge.bench.run import not_made  # what bench lists as not run, with the record's reason

    assert {s.name: s.reason for s in not_made([record])} == {
        f"rtmw-m-256x192-openvino-{p}": f"not made by quantize: {r}" for p, r in record.skipped_precisions.items()}
    if "bf16" in result.floats:  # the FP32 IR, computed in bf16; judged on the mini set like INT8
        assert result.floats["bf16"].meta.files == result.fp32.meta.files
        assert record.accuracy_of("bf16") == next(f.accuracy for f in record.floats if f.precision == "bf16")


def test_trained_detector_loses_at_most_one_ap_in_int8(openvino_run):
    detector = openvino_run[0].record.detector
    assert openvino_run[0].record.verdicts["detector"].passed is True
    assert detector.box_ap.fp32 - detector.box_ap.int8 <= 0.010 and detector.box_ap.fp32 > 0.5
    assert detector.artifacts.int8.size_mb < detector.artifacts.fp32.size_mb
    assert detector.calibration.size == 100  # the recipe's [detector] calibration_size


def test_int8_float_parts_compute_in_f32_by_default(openvino_run):
    folder = openvino_run[0].folder
    int8 = sorted(folder.glob("*-int8"))
    assert len(int8) == 2  # the pose model and the detector
    for artifact in int8:
        assert open_runner(load_artifact(artifact).main_path, precision="int8").computes == "f32"


def test_int8_artifact_runs_in_the_predictor(openvino_run):
    assert_runs_in_the_predictor(openvino_run[0].folder, "openvino")


@pytest.mark.parametrize("change, message", [
    (lambda data: data["accuracy"]["int8"].update(wholebody="high"), "'accuracy.int8.wholebody' must be a number"),
    (lambda data: data["verdicts"]["pose"].update(passed="no"), "'verdicts.pose.passed' must be true or false"),
    (lambda data: data.pop("machine"), "'machine' is missing"),
])
def test_a_damaged_record_is_one_line_naming_the_key(openvino_run, tmp_path, change, message):
    data = json.loads(openvino_run[0].record_path.read_text())
    change(data)
    damaged = tmp_path / "quantization.json"
    damaged.write_text(json.dumps(data))
    with pytest.raises(RtmwEdgeError, match="is a damaged quantization record") as caught:
        QuantizationRecord.read(damaged)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not readable JSON"),
    ('{"results": []}', "is not a quantization record (no 'accuracy' and 'verdicts')"),
    ('{"accuracy": {}, "verdicts": {}, "format_version": 7}', "of format 7"),
])
def test_a_foreign_file_is_not_read_as_a_record(tmp_path, text, message):
    path = tmp_path / "quantization.json"
    path.write_text(text)
    with pytest.raises(RtmwEdgeError, match=re.escape(message)):
        QuantizationRecord.read(path)


def test_onnxruntime_quantize_is_byte_identical_for_the_same_inputs_and_keeps_the_detector(tmp_path):
    runs = [quantize_with_detector(tmp_path, "onnxruntime", out=out) for out in ("first", "second")]
    assert [code for code, _ in runs] == [0, 0]
    folder = runs[0][1]
    record = read_record(folder)
    assert record.artifacts.int8.size_mb <= 0.30 * record.artifacts.fp32.size_mb
    assert record.recipe["quantizer"]["activation_type"] == "quint8"
    first, second = (f / "rtmw-m-256x192-onnxruntime-int8" / "rtmw-m-256x192.onnx" for _, f in runs)
    assert first.read_bytes() == second.read_bytes()
    # ONNX Runtime's plain scheme loses ~30 AP on RTMDet-nano; equalised and bias-corrected, every Conv int8 holds
    detector = record.detector
    assert detector.quantizer["equalize"] is True and record.verdicts["detector"].passed is True
    assert detector.box_ap.fp32 - detector.box_ap.int8 <= 0.010 and detector.box_ap.fp32 > 0.5
    assert detector.int8_kernels["QLinearConv"] == 123 and record.int8_kernels["QLinearConv"] > 90
    faster = detector.latency_ms.int8 < detector.latency_ms.fp32  # measured: INT8 2x slower here
    assert detector.recommended.precision == "fp32" or faster
    assert detector.recommended.precision == "int8" or "not faster" in detector.recommended.reason
    assert_runs_in_the_predictor(folder, "onnxruntime")


def test_ncnn_quantize_writes_a_stock_ncnn_int8_model_and_layer_search_keeps_the_detector(tmp_path, capsys):
    code, folder = quantize_with_detector(tmp_path, "ncnn")
    assert code == 0
    # minutes of work, each stage with a bar: calibration, the gate's candidates, the layer search, latency
    bars = capsys.readouterr().err
    for stage in ("ncnn calibration", "INT8 candidates", "ncnn layer ranking", "detector candidates", "latency"):
        assert stage in bars, stage
    record = read_record(folder)
    detector = record.detector
    # all-int8 (depthwise float) loses ~4.7 AP; the search reverts the most harmful layer(s) until it holds
    assert detector.attempts[0].verdict.passed is False and record.verdicts["detector"].passed is True
    assert 1 <= len(detector.reverted_to_float) <= 4 and detector.attempts[-1].search == "layers"
    assert detector.box_ap.fp32 - detector.box_ap.int8 <= 0.010
    assert record.artifacts.int8.size_mb <= 0.30 * record.artifacts.fp32.size_mb
    int8 = load_artifact(folder / "rtmw-m-256x192-ncnn-int8")
    assert "8=2" in int8.main_path.read_text()  # int8 convolutions with per-channel weight scales
    person = Predictor(int8.folder).predict(cv2.imread(str(need(MINI_DIR / "000000000785.jpg"))),
                                            boxes=np.array([[280.8, 44.7, 499.5, 393.0]]))[0]
    assert np.isfinite(person.keypoints).all()


def oracle_source(tmp_path: Path, fmt: str) -> Path:
    """An FP32 artifact of mmpose's seeded oracle weights: they count as real weights, so the gate judges."""
    npz = oracle_npz("rtmw-m-256x192")
    checkpoint = tmp_path / "oracle.pth"
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in oracle_state_dict(npz).items()}, checkpoint)
    # the oracle's seeded weights amplify float32 rounding past the untrained-weights export limit (see
    # test_predictor): relax it for making the FP32 source only
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(get_backend(fmt).tolerances, ("pose", "fp32"), Tolerance(0.1, 1.0))
        return export_model("rtmw-m", fmt, weights=str(checkpoint), out_dir=tmp_path, progress=False)[0].folder


@pytest.fixture(scope="module")
def oracle_onnx(tmp_path_factory) -> Path:
    return oracle_source(tmp_path_factory.mktemp("oracle"), "onnx")


LOOSE_BUDGET = "[gate]\nmax_drop_wholebody = 100.0\nmax_drop_part = 100.0\n"


def quantize_to_fail(tmp_path: Path, source: Path, backend: str, fmt: str,
                     recipe_extra: str) -> tuple[int, QuantizationRecord]:
    """Quantize the oracle source with --max-drop 0 0 over a recipe budget anything meets: no INT8 model meets
    the override. The exit code and record."""
    recipe = fast_recipe(tmp_path, backend, LOOSE_BUDGET + recipe_extra)
    code = main(["quantize", "--backend", backend, "--source", str(source), "--recipe", str(recipe),
                 "--max-drop", "0", "0", "--float-precisions", "--out", str(tmp_path / "q")])
    folder = tmp_path / "q" / f"rtmw-m-256x192-{backend}"
    assert load_artifact(folder / f"rtmw-m-256x192-{backend}-int8").meta.quantization["gate"] == "FAIL"
    return code, read_record(folder)


def test_a_failed_gate_reverts_groups_to_float_keeps_artifacts_and_exits_non_zero(tmp_path, oracle_onnx):
    """Every group is tried, measured sensitivity first, then the recipe's order; then the run fails."""
    code, record = quantize_to_fail(tmp_path, oracle_onnx, "onnxruntime", "onnx",
                                    'revert_order = ["head.encode"]\n[sensitivity]\nneck = { ap = 50.0 }\n')
    assert code == 1 and record.trained is True and record.budget == Budget(0.0, 0.0)
    assert record.reverted_to_float == ["neck", "head.encode"]
    assert [a.verdict.passed for a in record.attempts] == [False, False, False]


def test_the_recipe_budget_decides_the_verdict(tmp_path, oracle_onnx):
    def run(name: str, budget: str) -> QuantizeResult:
        recipe = fast_recipe(tmp_path, "onnxruntime", f"[gate]\n{budget}\nfallback = false\n", name=name)
        return quantize(oracle_onnx, "onnxruntime", recipe=recipe, out=tmp_path / name, precisions=(),
                        progress=False)

    strict = run("strict", "max_drop_wholebody = 0.0\nmax_drop_part = 0.0")
    loose = run("loose", "max_drop_wholebody = 100.0\nmax_drop_part = 100.0")
    assert strict.record.budget == Budget(0.0, 0.0) and strict.passed is False
    assert loose.record.budget == Budget(100.0, 100.0) and loose.passed is True
    assert strict.record.accuracy == loose.record.accuracy  # the same INT8 model: only the budget differs


def test_a_failed_gate_runs_the_backends_accuracy_control_then_the_groups_until_within_budget(tmp_path):
    """--max-drop 0 0: the backend's own search (2 iterations) cannot meet it; the groups
    follow, one more each attempt, until the gate passes (with every group float, INT8 is FP32's own network).
    Most groups start float, so three are left to revert (the whole chain of seven took 400 s of CI)."""
    backend = next(name for name, record in BACKENDS.items() if record.accuracy_control)
    keep = [*load_recipe(backend).keep_float.groups, "neck", "backbone.stage1", "backbone.stage2", "backbone.stage3"]
    recipe = fast_recipe(tmp_path, backend, LOOSE_BUDGET + "[gate.accuracy_control]\nmax_iterations = 2\n"
                         f"[keep_float]\ngroups = {keep!r}\n".replace("'", '"'))
    code = main(["quantize", "--backend", backend, "--source", str(oracle_source(tmp_path, backend)),
                 "--recipe", str(recipe), "--max-drop", "0", "0", "--float-precisions", "--out", str(tmp_path / "q")])
    record = read_record(tmp_path / "q" / f"rtmw-m-256x192-{backend}")
    first, controlled, *groups = record.attempts
    assert first.search == "groups" and controlled.search == "backend accuracy control"
    assert first.verdict.passed is False and controlled.verdict.passed is False
    assert 1 <= len(controlled.reverted_layers) <= 2 * 3  # a reverted quantizer can feed a few ops
    assert groups and all(a.search == "groups" and a.reverted_layers == [] for a in groups)
    assert [a.kept_float[:len(keep)] for a in groups] == [keep] * len(groups)
    assert [len(a.kept_float) for a in groups] == list(range(len(keep) + 1, len(keep) + 1 + len(groups)))
    assert groups[-1].verdict.passed is True and code == 0
    assert record.reverted_to_float == groups[-1].kept_float[len(keep):] and record.reverted_layers == []


@pytest.mark.parametrize("args, message", [
    (["--calib", "{empty}"], "is empty"),
    (["--max-drop", "-1", "2"], "must not be negative"),
    (["--eval", "{no_images_json}"], "are not in"),
    (["--recipe", "{bad_recipe}"], "unknown key"),
    (["--recipe", "{bad_sensitivity}"], "'sensitivity.neck' must be a table of ap, snr_db"),
    (["--recipe", "{bad_type}"], "'calibration.size' must be an integer, got 'lots'"),
    (["--model", "rtmw-q"], "unknown model 'rtmw-q'"),
])
def test_bad_inputs_end_with_one_clear_line(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "gt").mkdir()
    no_images = tmp_path / "gt" / "gt.json"
    no_images.write_text(need(MINI_DIR / "example_wholebody_val.json").read_text())
    bad_recipe = tmp_path / "bad.toml"
    bad_recipe.write_text("[quantizer]\nsubsetsize = 3\n")
    bad_sensitivity = tmp_path / "bad-sensitivity.toml"
    bad_sensitivity.write_text('[sensitivity]\nneck = 3.0\n')
    bad_type = tmp_path / "bad-type.toml"
    bad_type.write_text('[calibration]\nsize = "lots"\n')
    values = {"empty": tmp_path / "empty", "no_images_json": no_images, "bad_recipe": bad_recipe,
              "bad_sensitivity": bad_sensitivity, "bad_type": bad_type}
    args = [a.format(**values) for a in args]
    code = main(["quantize", "--backend", "openvino", "--weights", "untrained", "--out", str(tmp_path / "q"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "q").exists() or not any((tmp_path / "q").iterdir())


def test_an_int8_artifact_is_refused_as_the_fp32_source(openvino_run, capsys):
    result, tmp = openvino_run
    code = main(["quantize", "--backend", "openvino", "--source", str(result.int8.folder), "--out", str(tmp / "src")])
    assert code == 2 and "must be an FP32 pose artifact" in capsys.readouterr().err
    code = main(["quantize", "--backend", "onnxruntime", "--model", str(result.fp32.folder), "--out", str(tmp / "src")])
    assert code == 2 and "is for openvino, not onnxruntime" in capsys.readouterr().err


def test_gate_judges_drops_against_the_budget():
    fp32 = {"wholebody": 0.60, "body": 0.70, "face": 0.50}
    budget = Budget(1.0, 2.0)
    assert judge(fp32, {"wholebody": 0.595, "body": 0.69, "face": 0.49}, budget).passed is True
    failed = judge(fp32, {"wholebody": 0.595, "body": 0.70, "face": 0.47}, budget)
    assert failed.passed is False and "face" in failed.reason
    untrained = judge(fp32, {"wholebody": 0.40, "body": 0.3, "face": 0.1}, budget, unjudged_reason("untrained", "ap"))
    assert untrained.passed is None and "untrained weights" in untrained.reason
    box = judge({"box": 0.70}, {"box": 0.685}, budget, headline="box")  # held to the whole-body budget
    assert box.passed is False and "budget 1" in box.reason


def test_the_recommendation_is_a_lower_precision_only_when_it_is_faster_beyond_the_noise():
    passed, failed = Verdict(True, {}, "within budget"), Verdict(False, {"face": 3.0}, "face dropped")
    latency = {"fp32": 10.0, "int8": 9.6, "bf16": 7.0}
    noisy, clear = (0.96 * 1.04, 0.9, 1.1), (1.43, 1.3, 1.6)
    within_noise = Recommendation.of(latency, {"int8": passed}, {"int8": noisy})
    assert within_noise.precision == "fp32" and "beyond the timing noise" in within_noise.reason
    assert Recommendation.of({**latency, "int8": 7.0}, {"int8": passed}, {"int8": clear}).precision == "int8"
    both = Recommendation.of(latency, {"int8": passed, "bf16": passed}, {"int8": noisy, "bf16": clear})
    assert both.precision == "bf16"
    assert Recommendation.of(latency, {"int8": failed, "bf16": failed}, {"int8": clear, "bf16": clear}
                             ).precision == "fp32"


def test_sensitivity_measures_each_group_alone_and_its_table_reads_back_as_a_recipe(tmp_path, monkeypatch):
    from rtmw_edge.quantization import groups, pipeline

    two = {"head.encode": groups.LAYER_GROUPS["head.encode"], "neck": groups.LAYER_GROUPS["neck"]}
    monkeypatch.setattr(pipeline, "LAYER_GROUPS", two)  # two groups keep the test short
    code, folder = run_cli(tmp_path, "openvino", "--sensitivity")
    record = read_record(folder)
    assert code == 0 and set(record.sensitivity) == {"head.encode", "neck"}
    assert all(0.0 <= m.ap <= 100.0 and m.snr_db is not None for m in record.sensitivity.values())
    report = (folder / "report.md").read_text()
    assert "## Sensitivity" in report
    snippet = tmp_path / "measured.toml"  # the report's table, pasted into a recipe, is read back as measured
    snippet.write_text(report.split("```toml\n")[1].split("```")[0])
    table = load_recipe("openvino", snippet).sensitivity
    assert {g: m.ap for g, m in table.items()} == {g: m.ap for g, m in record.sensitivity.items()}
