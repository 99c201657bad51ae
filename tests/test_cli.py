"""The command line as a new user meets it: one table, or one clear line and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from rtmw_edge.cli import main
from rtmw_edge.model import build_model, get_spec


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rtmw_edge.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_models_prints_one_table_with_params_and_gflops():
    done = run_cli("models")
    assert done.returncode == 0
    row = next(line for line in done.stdout.splitlines() if line.startswith("| rtmw-m-256x192"))
    assert "32.26M" in row and "4.31" in row and "58.2 / 67.3" in row
    row_3d = next(line for line in done.stdout.splitlines() if line.startswith("| rtmw3d-l-384x288"))
    assert "57.50M" in row_3d and "17.71" in row_3d and "67.8 / -" in row_3d and "0.056 m" in row_3d
    detector = next(line for line in done.stdout.splitlines() if line.startswith("| yolox-tiny"))
    assert "416x416" in detector and "47.7 (Human-Art val)" in detector


def test_unknown_model_is_one_line_naming_the_known_ones():
    done = run_cli("export", "--model", "rtmw-s", "--format", "onnx")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unknown model 'rtmw-s'" in done.stderr and "rtmw-m" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def rtmw_l_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "rtmw-l.pth"
    with torch.device("meta"):
        shapes = build_model(get_spec("rtmw-l")).state_dict()
    torch.save({"meta": {}, "state_dict": {k: torch.zeros(v.shape) for k, v in shapes.items()}}, path)
    return path


def test_checkpoint_of_another_model_is_refused_and_nothing_written(tmp_path, rtmw_l_checkpoint, capsys):
    code = main(["export", "--model", "rtmw-m", "--format", "onnx", "--weights", str(rtmw_l_checkpoint),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit rtmw-m-256x192" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_truncated_checkpoint_is_one_clear_line(tmp_path, rtmw_l_checkpoint, capsys):
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(rtmw_l_checkpoint.read_bytes()[:5000])
    code = main(["export", "--format", "onnx", "--weights", str(truncated), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and str(truncated) in err and err.count("\n") == 1


def test_auto_weights_offline_refuse_without_allow_untrained(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RTMW_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RTMW_EDGE_MIRROR", "http://127.0.0.1:9/")  # discard port: nothing listens
    code = main(["export", "--format", "onnx", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--weights untrained" in err
    assert not (tmp_path / "out").exists()


def test_export_command_prints_the_verification(tmp_path, capsys):
    code = main(["export", "--format", "onnx", "--weights", "untrained", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "(untrained)" in out and "max abs error" in out
    assert (tmp_path / "rtmw-m-256x192-onnxruntime-fp32" / "metadata.json").is_file()


@pytest.mark.parametrize("url", ["notaurl", "ftp://x", "http://"])
def test_a_malformed_mirror_url_is_one_line_naming_the_variable(tmp_path, monkeypatch, capsys, url):
    monkeypatch.setenv("RTMW_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RTMW_EDGE_MIRROR", url)
    code = main(["export", "--format", "onnx", "--allow-untrained", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"rtmw-edge export: error: RTMW_EDGE_MIRROR={url!r} is ")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failed_export_leaves_no_out_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["export", "--format", "onnx", "--weights", "missing.pth", "--out", "newdir"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "missing.pth does not exist" in err
    assert list(tmp_path.iterdir()) == []
