"""Export to ONNX, OpenVINO IR and ncnn: verified against PyTorch, self-describing, and never half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from rtmw_edge.artifact import METADATA_FILE, load_artifact
from rtmw_edge.backends import get_backend, open_runner
from rtmw_edge.backends.base import Tolerance
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.exporter import compare_logits, export_detector, export_model
from rtmw_edge.model import build_model, get_spec
from rtmw_edge.model.weights import load_weights
from rtmw_edge.quantization.groups import LAYER_GROUPS, names_in

FORMATS = ["onnx", "openvino", "ncnn"]
# backend -> allowed max abs error on SimCC logits against PyTorch (fp32)
FP32_TOLERANCE = {"onnxruntime": 1e-4, "openvino": 1e-4, "ncnn": 1e-3}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    return {fmt: export_model("rtmw-m", fmt, "fp32", weights="untrained", out_dir=out, progress=False)[0]
            for fmt in FORMATS}


@pytest.fixture(scope="module")
def reference_model():
    spec = get_spec("rtmw-m")
    model = build_model(spec)
    load_weights(model, spec, "untrained")
    return model


@pytest.mark.parametrize("fmt", FORMATS)
def test_fp32_export_matches_pytorch_on_a_fresh_input(exported, reference_model, fmt):
    artifact = exported[fmt]
    batch = np.random.default_rng(7).standard_normal((3, 3, 256, 192), dtype=np.float32)
    with torch.no_grad():
        expected = [t.numpy() for t in reference_model(torch.from_numpy(batch))]
    runner = open_runner(artifact.main_path, artifact.meta.backend, input_name=artifact.meta.input_name,
                         output_names=artifact.meta.output_names)
    got = runner.run(batch)
    assert [g.shape for g in got] == [(3, 133, 384), (3, 133, 512)]
    report = compare_logits(expected, got)
    assert report["max_abs"] < FP32_TOLERANCE[artifact.meta.backend]
    assert report["agreement"] == 1.0


def test_onnx_is_one_file_with_named_io_and_dynamic_batch(exported):
    artifact = exported["onnx"]
    assert sorted(p.name for p in artifact.folder.iterdir()) == [METADATA_FILE, "rtmw-m-256x192.onnx"]
    model = onnx.load(str(artifact.main_path))
    (graph_input,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert graph_input.name == "input" and dims[1:] == [3, 256, 192] and isinstance(dims[0], str)
    assert [o.name for o in model.graph.output] == ["simcc_x", "simcc_y"]


def test_every_onnx_node_belongs_to_exactly_one_layer_group(exported):
    """Mixed precision reverts groups: a node in no group would stay int8 whatever the gate reverts."""
    graph = onnx.load(str(exported["onnx"].main_path), load_external_data=False).graph
    nodes = [n.name for n in graph.node if n.op_type not in ("Constant", "Identity")]  # no arithmetic
    owners = {name: [g for g in LAYER_GROUPS if names_in([g], [name])] for name in nodes}
    assert {name: groups for name, groups in owners.items() if len(groups) != 1} == {}


def test_sidecar_says_everything_a_later_step_needs(exported):
    meta = json.loads((exported["openvino"].folder / METADATA_FILE).read_text())
    assert meta["model"] == "rtmw-m-256x192" and meta["backend"] == "openvino" and meta["precision"] == "fp32"
    assert meta["input_hw"] == [256, 192] and meta["preprocessing"]["channel_order"] == "RGB"
    assert meta["preprocessing"]["mean"] == [123.675, 116.28, 103.53]
    assert meta["keypoints"]["num_keypoints"] == 133 and len(meta["keypoints"]["flip_indices"]) == 133
    assert meta["weights"]["kind"] == "untrained" and meta["trained"] is False
    assert {"torch", "openvino"} <= set(meta["tools"])
    assert set(meta["files"]) == {"rtmw-m-256x192.xml", "rtmw-m-256x192.bin"}
    assert meta["verification"]["max_abs"] < 1e-4


def test_ncnn_param_records_its_input_shape(exported):
    text = exported["ncnn"].main_path.read_text()
    input_line = next(line for line in text.splitlines() if line.startswith("Input"))
    assert input_line.split()[-3:] == ["0=192", "1=256", "2=3"]


def test_fp16_halves_the_file_and_still_verifies(tmp_path, exported):
    artifact, report = export_model("rtmw-m", "onnx", "fp16", weights="untrained", out_dir=tmp_path,
                                    progress=False)
    assert artifact.main_path.stat().st_size < 0.55 * exported["onnx"].main_path.stat().st_size
    assert report["max_rel"] < get_backend("onnx").tolerance("pose", "fp16").max_rel
    assert artifact.meta.precision == "fp16"


def test_existing_artifact_is_refused_and_left_untouched(exported):
    artifact = exported["onnx"]
    before = {p.name: p.stat().st_mtime_ns for p in artifact.folder.iterdir()}
    with pytest.raises(RtmwEdgeError, match="already exists"):
        export_model("rtmw-m", "onnx", weights="untrained", out_dir=artifact.folder.parent, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in artifact.folder.iterdir()} == before


def test_a_failed_verification_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setitem(get_backend("onnx").tolerances, ("pose", "fp32"), Tolerance(0.0, 1.0))
    with pytest.raises(RtmwEdgeError, match="does not match its source"):
        export_model("rtmw-m", "onnx", weights="untrained", out_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_changed_file_no_longer_loads(tmp_path, exported):
    source = exported["ncnn"].folder
    copy = tmp_path / source.name
    copy.mkdir()
    for file in source.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    param = copy / "rtmw-m-256x192.ncnn.param"
    param.write_text(param.read_text().replace("0=192 1=256", "0=191 1=256"))
    with pytest.raises(RtmwEdgeError, match="does not match its metadata"):
        load_artifact(param)


def test_unwritable_output_folder_is_one_clear_error(tmp_path):
    if os.geteuid() == 0:  # permissions do not bind root: use a place nobody may create folders in
        out = Path("/sys/rtmw-edge-export-test")
    else:
        out = tmp_path / "locked"
        out.mkdir()
        out.chmod(0o555)
    with pytest.raises(RtmwEdgeError, match=r"cannot create folder|not writable"):
        export_model("rtmw-m", "onnx", weights="untrained", out_dir=out / "sub", progress=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_detector_onnx_becomes_a_verified_artifact_on_every_backend(tmp_path, fmt):
    from oracle import MODELS_DIR, need

    artifact, report = export_detector(need(MODELS_DIR / "rtmdet-nano.onnx"), fmt, out_dir=tmp_path)
    assert artifact.meta.kind == "detector" and artifact.meta.input_hw == [320, 320]
    assert artifact.meta.preprocessing["channel_order"] == "BGR"
    assert report["max_rel"] <= get_backend(artifact.meta.backend).tolerance("detector", "fp32").max_rel
    assert len(artifact.meta.output_names) == 3


def test_the_self_check_judges_error_relative_to_the_logits_scale():
    """A larger model has larger logits and proportionally larger float32 rounding: the same relative error
    passes whatever the scale, where an absolute limit would fail a faithful larger model."""
    rng = np.random.default_rng(3)
    expected = [rng.standard_normal((2, 133, 384)).astype(np.float32)]
    got = [e + 1e-5 * rng.standard_normal(e.shape).astype(np.float32) for e in expected]
    small, large = compare_logits(expected, got), compare_logits([10 * e for e in expected], [10 * g for g in got])
    assert large["max_abs"] == pytest.approx(10 * small["max_abs"], rel=1e-3)
    assert large["max_rel"] == pytest.approx(small["max_rel"], rel=1e-3)
    assert small["agreement_with_ties"] == 1.0


def _lacking() -> list[tuple[str, str, str]]:
    """(backend, precision, the flags it needs) of every precision this CPU cannot compute."""
    from rtmw_edge.backends import BACKENDS
    from rtmw_edge.machine import cpu_flags

    return [(b.name, p, " or ".join(b.arithmetic[p].needs)) for b in BACKENDS.values() for p in b.precisions
            if b.lacks(p, cpu_flags())]


def test_openvino_bf16_keeps_the_fp32_ir_and_computes_in_bf16(tmp_path, exported):
    if ("openvino", "bf16") in [(b, p) for b, p, _ in _lacking()]:
        pytest.skip("this CPU has neither AMX nor AVX512-BF16")
    artifact, report = export_model("rtmw-m", "openvino", "bf16", weights="untrained", out_dir=tmp_path,
                                    progress=False)
    assert artifact.folder.name == "rtmw-m-256x192-openvino-bf16" and artifact.meta.precision == "bf16"
    weights = "rtmw-m-256x192.bin"  # the float32 weights themselves (op names in the .xml count per process)
    assert artifact.meta.files[weights] == exported["openvino"].meta.files[weights]
    # computed in bf16: far from float32's ~1e-5, yet within its own tolerance
    fp32_error = exported["openvino"].meta.verification["max_rel"]
    assert 100 * fp32_error < report["max_rel"] <= get_backend("openvino").tolerance("pose", "bf16").max_rel


def test_float_precisions_made_from_the_fp32_files_verify_against_them(tmp_path, exported):
    """What quantize keeps beside FP32 and INT8: each precision this CPU computes, from the FP32 artifact."""
    from rtmw_edge.quantization.floats import derive_artifact, float_precisions

    lacking = {(b, p) for b, p, _ in _lacking()}
    made = []
    for fp32 in exported.values():
        for precision in float_precisions(fp32.meta.backend):
            if (fp32.meta.backend, precision) in lacking:
                continue
            artifact = derive_artifact(fp32, precision, tmp_path)
            tolerance = get_backend(fp32.meta.backend).tolerance("pose", precision)
            assert artifact.meta.precision == precision and artifact.meta.verification["max_rel"] <= tolerance.max_rel
            size = sum((artifact.folder / n).stat().st_size for n in artifact.meta.files)
            fp32_size = sum((fp32.folder / n).stat().st_size for n in fp32.meta.files)
            assert size < (0.55 if precision == "fp16" else 1.01) * fp32_size  # fp16 stores half-size weights
            if precision == "bf16":  # the FP32 IR files themselves
                assert artifact.meta.files == fp32.meta.files
            made.append(artifact.folder.name)
    assert "rtmw-m-256x192-onnxruntime-fp16" in made  # ONNX Runtime's fp16 (fp32 arithmetic) runs anywhere


def test_a_precision_this_cpu_cannot_compute_is_refused_in_one_line_naming_its_flag(tmp_path, capsys):
    from oracle import MODELS_DIR, need

    from rtmw_edge.cli import main

    backend, precision, flags = _lacking()[0]  # x86 has no Arm fp16, Arm no AMX: there is always one
    code = main(["export", "--detector", str(need(MODELS_DIR / "rtmdet-nano.onnx")), "--backend", backend,
                 "--precision", precision, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and flags in err and "this CPU has none of them" in err, err
    assert not (tmp_path / "out").exists()


def test_ncnn_fp16_weights_halve_the_bin_and_read_back_within_half_precision(tmp_path, exported):
    """ncnn's fp16 artifact stores its weights as pnnx's fp16=1 does; read in float32 they stay within fp16
    rounding of the FP32 model (its fp16 arithmetic needs an Arm v8.2 CPU to be checked)."""
    from rtmw_edge.backends.ncnn.modelbin import half_weights

    fp32 = exported["ncnn"]
    param = tmp_path / fp32.main_path.name
    param.write_text(fp32.main_path.read_text())
    half_weights(fp32.main_path, fp32.main_path.with_suffix(".bin"), param.with_suffix(".bin"))
    assert param.with_suffix(".bin").stat().st_size < 0.55 * fp32.main_path.with_suffix(".bin").stat().st_size
    probe = np.random.default_rng(5).standard_normal((1, 3, 256, 192), dtype=np.float32)
    report = compare_logits(open_runner(fp32.main_path).run(probe), open_runner(param).run(probe))
    assert 0 < report["max_rel"] < 1e-2
