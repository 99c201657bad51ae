"""`rtmw-edge predict` over what users give it: several images, folders, videos; and every bad input is one line,
a non-zero exit and nothing written. The model is a constant ONNX artifact: these tests are about the inputs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_artifact import constant_artifact, constant_detector

from rtmw_edge import cli

CALIB_DATA = Path(__file__).resolve().parents[1] / "calib_data"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return constant_artifact(tmp_path_factory.mktemp("model") / "constant", 1.0)


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """With a detector the Predictor has no warning to give, so stderr holds only what predict says."""
    return constant_detector(tmp_path_factory.mktemp("detector") / "person.onnx")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 160x120 shipped photo: cheap to encode and decode."""
    return cv2.resize(cv2.imread(str(CALIB_DATA / "astronaut.jpg")), (160, 120), interpolation=cv2.INTER_AREA)


@pytest.fixture
def predict(model: Path, detector: Path, capsys) -> Callable[..., tuple[int, str, str]]:
    """`rtmw-edge predict ARGV` with the constant model and detector: (exit code, stdout, stderr)."""

    def run(*argv: str, model: Path = model) -> tuple[int, str, str]:
        code = cli.main(["predict", *argv, "--model", str(model), "--detector", str(detector), "--threads", "1"])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def write_video(path: Path, photo: np.ndarray, frames: int, fourcc: str = "mp4v") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (160, 120))
    for shift in range(frames):
        writer.write(np.roll(photo, 4 * shift, axis=1))
    writer.release()
    return path


def assert_one_line_error(code: int, out: str, err: str, *phrases: str) -> None:
    assert code == 2 and out == ""
    assert err.startswith("rtmw-edge predict: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, err


# ----------------------------------------------------------------------------------------- good inputs

def test_a_folder_skips_and_counts_non_images_and_unreadable_files(predict, photo, tmp_path, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "000000000785.jpg"), photo)
    cv2.imwrite(str(folder / "frame.png"), photo)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    with caplog.at_level(logging.WARNING):
        code, out, _ = predict(str(folder), "--out", str(tmp_path / "out"))
    assert code == 0
    assert "2 images, 2 persons, 2 skipped" in out
    skipped = sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped"))
    assert [Path(m.split(":")[0].removeprefix("skipped ")).name for m in skipped] == ["broken.jpg", "notes.txt"]
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    # ids come from the name, else count the folder's image files (broken.jpg took 1), so they stay stable
    assert [(e["file_name"], e["image_id"]) for e in entries] == [("000000000785.jpg", 785), ("frame.png", 2)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "000000000785_pose.jpg", "frame_pose.jpg", "predictions.json"]


def test_the_shipped_photos_by_name_share_one_predictions_json_and_skip_nothing(predict, tmp_path, caplog):
    photos = sorted(CALIB_DATA.glob("*.jpg"))
    assert len(photos) >= 3
    with caplog.at_level(logging.WARNING):
        code, out, _ = predict(*map(str, photos), "--out", str(tmp_path / "out"))
    assert code == 0 and f"{len(photos)} images, {len(photos)} persons, 0 skipped" in out
    assert [r.getMessage() for r in caplog.records if r.name.startswith("rtmw_edge.media")] == []
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [e["file_name"] for e in entries] == [p.name for p in photos]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["predictions.json", *(f"{p.stem}_pose.jpg" for p in photos)])


def test_images_folders_and_a_video_in_one_run_and_a_file_given_twice_counts_once(predict, photo, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), photo)
    cv2.imwrite(str(tmp_path / "b.png"), photo)
    video = write_video(tmp_path / "clip.mp4", photo, 3)
    code, out, _ = predict(str(folder), str(folder / "a.jpg"), str(tmp_path / "b.png"), str(video),
                           "--out", str(tmp_path / "out"))
    assert code == 0 and "2 images, 3 frames, 5 persons, 0 skipped" in out
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [e["file_name"] for e in entries] == ["a.jpg", "b.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a_pose.jpg", "b_pose.jpg", "clip_frames.jsonl", "clip_pose.mp4", "predictions.json"]


def test_a_video_gives_an_annotated_mp4_and_one_json_line_per_frame(predict, photo, tmp_path):
    video = write_video(tmp_path / "clip.mp4", photo, 3)
    code, out, _ = predict(str(video), "--out", str(tmp_path / "out"))
    assert code == 0 and "3 frames, 3 persons" in out
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip_pose.mp4"))
    frames = []
    while (frame := capture.read())[0]:
        frames.append(frame[1])
    capture.release()
    assert [f.shape for f in frames] == [(120, 160, 3)] * 3
    lines = (tmp_path / "out" / "clip_frames.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["frame"], len(r["persons"])) for r in records] == [(0, 1), (1, 1), (2, 1)]
    assert len(records[0]["persons"][0]["keypoints"]) == 133 and records[0]["persons"][0]["track_id"] is None
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_frames.jsonl", "clip_pose.mp4"]


def test_existing_outputs_are_refused_unless_overwrite(predict, photo, tmp_path):
    image = tmp_path / "person.jpg"
    cv2.imwrite(str(image), photo)
    args = [str(image), "--out", str(tmp_path / "out")]
    assert predict(*args)[0] == 0
    before = (tmp_path / "out" / "predictions.json").read_bytes()
    code, _, err = predict(*args)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert (tmp_path / "out" / "predictions.json").read_bytes() == before
    assert predict(*args, "--overwrite")[0] == 0


# ------------------------------------------------------------------------------------------ bad inputs

@pytest.mark.parametrize("what", ["model", "input", "unreadable image"])
def test_a_missing_or_unreadable_path_is_one_line_and_exit_code_2(predict, model, tmp_path, what):
    image = tmp_path / "person.jpg"
    image.write_bytes(b"" if what == "unreadable image" else b"x")
    model = tmp_path / "no-such-model" if what == "model" else model
    source = tmp_path / "no-such-input.jpg" if what == "input" else image
    assert_one_line_error(*predict(str(source), "--out", str(tmp_path / "out"), model=model))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [[], ["README.md"], ["broken.jpg"]], ids=["empty", "no-image", "unreadable"])
def test_predict_on_a_folder_without_a_readable_image_is_one_line_and_exit_2(predict, tmp_path, content):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in content:
        (folder / name).write_text("not an image")
    phrase = "none of the 1 image files could be read" if content == ["broken.jpg"] else "holds no image file"
    assert_one_line_error(*predict(str(folder), "--out", str(tmp_path / "out" / "sub")), phrase)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


@pytest.mark.parametrize(("suffix", "fourcc", "phrase"), [
    (".mp4", "mp4v", "cannot open"),  # its index (moov) is at the end: nothing to read
    (".avi", "XVID", "of the 20 frames its container reports"),
    (".mkv", "mp4v", "of the 20 frames its container reports"),
])
def test_a_truncated_video_is_one_line_and_leaves_nothing(predict, photo, tmp_path, suffix, fourcc, phrase):
    video = write_video(tmp_path / f"clip{suffix}", photo, 20, fourcc)
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    assert_one_line_error(*predict(str(video), "--out", str(tmp_path / "out")), phrase)
    assert sorted(p.name for p in tmp_path.iterdir()) == [video.name]


def test_a_truncated_video_prints_one_line_and_no_ffmpeg_notes_in_a_fresh_process(model, detector, photo,
                                                                                  tmp_path):
    video = write_video(tmp_path / "clip.avi", photo, 20, "XVID")
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    argv = ["predict", str(video), "--model", str(model), "--detector", str(detector), "--out", str(tmp_path / "out")]
    done = subprocess.run([sys.executable, "-m", "rtmw_edge.cli", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "of the 20 frames" in done.stderr, done.stderr


def test_a_failed_run_leaves_neither_the_overlays_done_so_far_nor_the_out_folder(predict, photo, tmp_path):
    """The folder's notes.txt would be reported as skipped by a run that succeeds; this one says only its error."""
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.jpg"), photo)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "new" / "out"
    assert_one_line_error(*predict(str(tmp_path / "in"), str(tmp_path / "b.jpg"), "--out", str(out)),
                          "b.jpg cannot be read as an image")
    assert not (tmp_path / "new").exists()


def test_two_inputs_of_one_name_are_refused_before_any_work(predict, photo, tmp_path):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "same.jpg"), photo)
    assert_one_line_error(*predict(str(tmp_path / "x"), str(tmp_path / "y"),
                                   "--out", str(tmp_path / "out")), "share the name 'same.jpg'")
    assert not (tmp_path / "out").exists()


def test_a_camera_must_be_the_only_input(predict, photo, tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), photo)
    assert_one_line_error(*predict("0", str(tmp_path / "a.jpg"), "--out", str(tmp_path / "out")),
                          "camera 0 must be the only input")


def test_a_checkpoint_given_as_the_model_is_named_with_how_to_export_it(predict, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("x.pth").write_bytes(b"a checkpoint")
    Path("a.jpg").write_bytes(b"x")
    code, out, err = predict("a.jpg", model=Path("x.pth"))
    assert_one_line_error(code, out, err, "x.pth is not an artifact", "rtmw-edge export --weights x.pth")
    assert ". has no" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "x.pth"]
