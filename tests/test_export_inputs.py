"""What a new user gives `export` and the thread options by mistake: one clear line and exit 2, nothing written
beside their files or in the output folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from oracle import MODELS_DIR, need

from rtmw_edge.cli import main


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def tiny_onnx(path: Path) -> Path:
    """A valid ONNX network whose only output is an image-shaped tensor: no detector gives that."""
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["out"])], "not-a-detector", [image], [out])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("command", [["predict", "photo.jpg", "--model", "m"], ["bench", "m"],
                                     ["quantize", "--backend", "openvino"]])
@pytest.mark.parametrize("threads", ["-1", "0", "1000"])
def test_threads_outside_one_to_the_cpu_count_is_one_line(tmp_path, capsys, command, threads):
    code = main([*command, "--threads", threads, "--out", str(tmp_path / "out")])
    assert code == 2 and "threads must be a whole number from 1 to" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_a_text_file_given_as_detector_is_one_line(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my shopping list\n")
    code = main(["export", "--detector", str(notes), "--backend", "onnx", "--out", str(tmp_path / "out")])
    assert code == 2 and "is not an ONNX model" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_a_network_that_is_no_detector_is_refused_at_export(tmp_path, capsys):
    model = tiny_onnx(tmp_path / "pose.onnx")
    code = main(["export", "--detector", str(model), "--backend", "openvino", "--out", str(tmp_path / "out")])
    assert code == 2 and "is not a person detector" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_ncnn_detector_export_writes_nothing_beside_the_users_onnx(tmp_path, capsys):
    source = tmp_path / "mine"
    source.mkdir()
    onnx_path = Path(shutil.copy(need(MODELS_DIR / "rtmdet-nano.onnx"), source / "rtmdet-nano.onnx"))
    code = main(["export", "--detector", str(onnx_path), "--backend", "ncnn", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    assert [p.name for p in source.iterdir()] == ["rtmdet-nano.onnx"]
    assert (tmp_path / "out" / "rtmdet-nano-ncnn-fp32" / "metadata.json").is_file()


def test_an_unknown_backend_names_the_backends_and_aliases(capsys):
    from rtmw_edge.backends import get_backend
    from rtmw_edge.errors import RtmwEdgeError

    with pytest.raises(RtmwEdgeError, match=r"onnxruntime \(onnx\).*openvino"):
        get_backend("tensorflow")
    assert get_backend("onnx") is get_backend("onnxruntime")
