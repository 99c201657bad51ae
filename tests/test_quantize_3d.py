"""The 3D gate: INT8's camera-space keypoints against FP32's after aligning roots, in millimetres per part, judged
beside the 2D agreement, recorded, reported, and covering cls_z in the layer groups."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import onnx
import pytest
from tiny_artifact import constant_artifact

from rtmw_edge.artifact import load_artifact
from rtmw_edge.bench import read_results
from rtmw_edge.cli import main
from rtmw_edge.evaluation.drift3d import root_aligned_drift_mm
from rtmw_edge.keypoints import PARTS
from rtmw_edge.quantization.gate import Budget, Verdict, combined, judge_drift
from rtmw_edge.quantization.groups import LAYER_GROUPS, names_in
from rtmw_edge.quantization.record import QuantizationRecord

TINY = """
[calibration]
size = 2
[quantizer]
preprocess = true
[gate]
reference_crops = 2
fallback = false
"""
DRIFT_KEYS = {"wholebody", *PARTS}


def test_drift_is_zero_for_a_whole_person_moved_and_counts_millimetres_per_part():
    rng = np.random.default_rng(0)
    reference = rng.uniform(-1, 1, (2, 133, 3)) + [0, 0, 5]
    valid = np.ones((2, 133), bool)
    assert set(root_aligned_drift_mm(reference, reference + [0.3, -0.2, 1.0], valid, (11, 12)).values()) == {0.0}
    moved = reference.copy()
    moved[:, 91:112] += [0.0, 0.0, 0.021]  # the left hand 21 mm further away
    drift = root_aligned_drift_mm(reference, moved, valid, (11, 12))
    assert drift["left_hand"] == pytest.approx(21.0) and drift["body"] == 0.0
    assert drift["wholebody"] == pytest.approx(21.0 * 21 / 133, abs=1e-3)


def test_the_3d_budget_fails_over_its_limits_and_fails_the_pose_verdict():
    budget = Budget(1.0, 2.0)
    assert (budget.wholebody_mm, budget.part_mm) == (15.0, 25.0)
    over = judge_drift({"wholebody": 9.0, "face": 30.0}, budget)
    assert over.passed is False and over.reason == "face drifts 30.0 mm in 3D (budget 25 mm)"
    assert judge_drift({"wholebody": 9.0, "face": 20.0}, budget).passed is True
    assert judge_drift({"wholebody": 99.0}, budget, "untrained weights").passed is None
    flat = Verdict(True, {"wholebody": 0.5}, "within budget")
    both = combined(flat, over)
    assert both.passed is False and both.drops == flat.drops and "3D: face drifts" in both.reason


def test_every_node_of_the_3d_onnx_cls_z_included_belongs_to_one_layer_group(rtmw3d_artifact):
    graph = onnx.load(str(load_artifact(rtmw3d_artifact("onnx")).main_path), load_external_data=False).graph
    nodes = [n.name for n in graph.node if n.op_type not in ("Constant", "Identity")]
    owners = {name: [g for g in LAYER_GROUPS if names_in([g], [name])] for name in nodes}
    assert {name: groups for name, groups in owners.items() if len(groups) != 1} == {}
    assert any("/head/cls_z/" in n for n in names_in(["head.cls"], nodes))
    assert names_in(["head.cls"], ["simcc_z"]) == ["simcc_z"]  # OpenVINO names the classifier after its output


@pytest.fixture(scope="module")
def quantized_3d(rtmw3d_artifact, tmp_path_factory) -> tuple[int, str, Path]:
    """`rtmw-edge quantize` of the shared FP32 rtmw3d-l (untrained) on ONNX Runtime, with a 3D budget given."""
    tmp = tmp_path_factory.mktemp("q3d")
    recipe = tmp / "tiny.toml"
    recipe.write_text(TINY)
    argv = ["quantize", "--backend", "onnxruntime", "--source", str(rtmw3d_artifact("onnx")), "--recipe",
            str(recipe), "--float-precisions", "--max-drop", "1", "2", "10", "20", "--out", str(tmp / "q")]
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = main(argv)
    return code, stdout.getvalue(), tmp / "q" / "rtmw3d-l-384x288-onnxruntime"


def test_quantize_3d_records_the_drift_per_part_reported_never_judged_on_untrained_weights(quantized_3d):
    code, stdout, folder = quantized_3d
    assert code == 0
    record = QuantizationRecord.read(folder / "quantization.json")
    assert record.budget == Budget(1.0, 2.0, 10.0, 20.0)
    drift = record.accuracy.drift_3d_mm
    assert set(drift) == DRIFT_KEYS and all(mm >= 0 for mm in drift.values()) and drift["wholebody"] > 0
    assert record.verdicts["pose_3d"].drops == drift and record.verdicts["pose_3d"].passed is None
    assert record.verdicts["pose"].passed is None
    assert "3D drift mm" in stdout and f"{drift['wholebody']:.1f}" in stdout
    assert "3D budget" in (folder / "report.md").read_text()
    assert load_artifact(folder / "rtmw3d-l-384x288-onnxruntime-int8").meta.output_names == [
        "simcc_x", "simcc_y", "simcc_z"]


def test_max_drop_takes_two_or_four_numbers_in_one_line(tmp_path, capsys):
    assert main(["quantize", "--backend", "onnx", "--max-drop", "1", "2", "3", "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-drop takes WHOLEBODY PART" in err
    assert not (tmp_path / "q").exists()


def test_bench_shows_a_3d_artifact_s_drift_and_report_merge_keeps_2d_and_3d_rows_apart(quantized_3d, tmp_path,
                                                                                      capsys):
    _, _, folder = quantized_3d
    record = QuantizationRecord.read(folder / "quantization.json")
    flat = constant_artifact(tmp_path / "flat", 0.5)
    runs = {"3d": folder / "rtmw3d-l-384x288-onnxruntime-int8", "2d": flat}
    for label, artifact in runs.items():
        assert main(["bench", str(artifact), "--runs", "1", "--batch", "2", "--threads", "1", "--label", label,
                     "--out", str(tmp_path / label)]) == 0
    three_d = read_results(tmp_path / "3d" / "results.json").artifacts[0]
    assert three_d.accuracy.drift_3d_mm == record.accuracy.drift_3d_mm
    assert read_results(tmp_path / "2d" / "results.json").artifacts[0].accuracy.drift_3d_mm is None
    capsys.readouterr()
    assert main(["report", "merge", str(tmp_path / "3d" / "results.json"), str(tmp_path / "2d" / "results.json"),
                 "--out", str(tmp_path / "merged")]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    row_3d = next(r for r in rows if "rtmw3d-l-384x288" in r)
    row_2d = next(r for r in rows if r.startswith("| flat"))
    assert f"3D drift {record.accuracy.drift_3d_mm['wholebody']:.1f} mm" in row_3d and "3D drift" not in row_2d
    assert "3D drift (3D models only)" in (tmp_path / "merged" / "report.md").read_text()
