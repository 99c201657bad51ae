"""`predict --ray` and `rtmw_edge.predict_dataset` on a real local Ray (2 CPUs, started once for the module):
the same files as the plain run byte for byte, in input order, with failed images skipped and a worker that
really dies (os._exit) restarted by Ray. The model is a tiny ONNX artifact: these tests are about the dataset."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_artifact import constant_detector, pattern_artifact

import rtmw_edge
from rtmw_edge import cli
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.evaluation import load_results
from rtmw_edge.media.dataset import PoseActor
from rtmw_edge.profiles import load_profile

IMAGES = 200


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model, a detector, a folder of 200 small distinct images and one broken one, a 2 x 1 thread profile."""
    root = tmp_path_factory.mktemp("ray")
    folder = root / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(IMAGES):
        cv2.imwrite(str(folder / f"img{index:03d}.jpg"), rng.integers(0, 255, (24 + index % 7, 32, 3), np.uint8))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    profile = root / "profile.toml"
    profile.write_text('[ray]\nconcurrency = 2\nthreads = 1\nbatch = 20\n')
    return {"model": pattern_artifact(root / "model"), "detector": constant_detector(root / "person.onnx"),
            "folder": folder, "profile": profile, "root": root}


@pytest.fixture(scope="module")
def plain(case) -> Path:
    """The single-process run, through the command line."""
    out = case["root"] / "plain"
    assert cli.main(["predict", str(case["folder"]), "--model", str(case["model"]), "--detector",
                     str(case["detector"]), "--threads", "1", "--out", str(out)]) == 0
    return out


def _same_files(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) == IMAGES + 1  # overlays + predictions
    different = [n for n in names if (a / n).read_bytes() != (b / n).read_bytes()]
    assert not different, different[:5]


def test_predict_ray_writes_the_plain_runs_files_byte_for_byte_and_skips_the_broken_image(
        ray_local, case, plain, capsys):
    out = case["root"] / "cli-ray"
    capsys.readouterr()
    code = cli.main(["predict", str(case["folder"]), "--model", str(case["model"]), "--detector",
                     str(case["detector"]), "--device-profile", str(case["profile"]), "--out", str(out), "--ray"])
    stdout = capsys.readouterr().out
    assert code == 0 and f"{IMAGES} images, {IMAGES} persons, 1 skipped" in stdout, stdout
    _same_files(plain, out)
    assert len(load_results(out / "predictions.json").image_id) == IMAGES  # what `rtmw-edge evaluate` reads
    entries = json.loads((out / "predictions.json").read_text())
    assert [e["file_name"] for e in entries] == [f"img{i:03d}.jpg" for i in range(IMAGES)]  # input order


def test_an_actor_that_dies_midway_is_restarted_and_the_output_is_still_complete(ray_local, case, plain):
    marker = case["root"] / "died-once"

    class DiesOnce(PoseActor):
        """Exits its process (no cleanup, as a crash) on the batch holding image 100, the first time only."""

        def __call__(self, batch):
            if any("img100" in str(p) for p in batch["path"]) and not marker.exists():
                marker.touch()
                os._exit(1)
            return super().__call__(batch)

    out = case["root"] / "api-ray"
    summary = rtmw_edge.predict_dataset([case["folder"]], case["model"], out, detector=case["detector"],
                                        profile=case["profile"], actor=DiesOnce)
    assert marker.exists(), "the actor never died: the test proved nothing"
    assert (summary.images, summary.persons, len(summary.skipped)) == (IMAGES, IMAGES, 1)
    _same_files(plain, out)


def test_a_named_unreadable_image_is_recorded_and_skipped_on_ray(ray_local, case, tmp_path):
    summary = rtmw_edge.predict_dataset([case["folder"] / "img000.jpg", case["folder"] / "broken.jpg"],
                                        case["model"], tmp_path / "out", detector=case["detector"],
                                        profile=case["profile"])
    assert summary.images == 1 and summary.skipped == [f"skipped {case['folder'] / 'broken.jpg'}: "
                                                       "cannot be read as an image"]
    with pytest.raises(RtmwEdgeError, match="none of the 1 image files could be read"):
        rtmw_edge.predict_dataset([case["folder"] / "broken.jpg"], case["model"], tmp_path / "none",
                                  detector=case["detector"], profile=case["profile"])
    assert not (tmp_path / "none").exists()


def test_a_video_on_ray_is_one_line_and_exit_2(case, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    code = cli.main(["predict", str(video), "--model", str(case["model"]), "--ray"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "predict it without --ray" in err, err


def test_predict_ray_without_ray_installed_says_how_to_install_it_and_exits_2(case, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed: `import ray` fails
    code = cli.main(["predict", str(case["folder"]), "--model", str(case["model"]), "--ray"])
    err = capsys.readouterr().err
    assert code == 2 and err == "rtmw-edge predict: error: Ray is not installed: pip install 'rtmw-edge[ray]'\n"


@pytest.mark.parametrize(("table", "message"), [("concurrency = 0", "'ray.concurrency' must be an integer >= 1"),
                                                ("actors = 2", "unknown key 'ray.actors'")])
def test_a_bad_ray_table_in_a_profile_is_one_line_naming_the_key(tmp_path, table, message):
    (tmp_path / "profile.toml").write_text(f"[ray]\n{table}\n")
    with pytest.raises(RtmwEdgeError, match=message):
        load_profile(tmp_path)


def test_the_shipped_profiles_say_how_to_run_on_ray():
    plans = {name: load_profile(name).ray for name in ("intel-cpu", "raspberry-pi", "jetson")}
    assert all(plan.concurrency >= 1 and plan.threads >= 1 and plan.batch >= 1 for plan in plans.values())
    assert plans["jetson"].concurrency == 1  # one GPU
