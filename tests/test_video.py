"""Video and camera: ids that stay with their person, the detector every N frames, smoothing, and runs that end
cleanly (a camera that is not there, Ctrl-C).

The detector is the trained RTMDet-nano of ../shared; the pose network is UNTRAINED (a fixed random SimCC
pattern, as untrained RTMW's nearly is, microseconds per crop): its keypoints sit at fixed places of each crop
and say nothing about the pose, so ids are matched on the trained detector's boxes, with the keypoints' OKS
agreeing. The clips are made from a ../shared photo of five skiers by a panning, zooming window (tests/clips.py).
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from clips import CLIP_WIDTH, FIVE_PEOPLE, PEOPLE, Clip, panning_zooming_clip, still_clip, write_video
from oracle import MINI_DIR, MODELS_DIR, need
from tiny_artifact import pattern_artifact

import rtmw_edge
from rtmw_edge import cli
from rtmw_edge.bench import read_results
from rtmw_edge.detector import box_iou
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.predictor import Person, Predictor
from rtmw_edge.video import OneEuro, OneEuroParams, PoseStream
from rtmw_edge.video.tracker import Track, Tracker, carried_box

FRAMES = 60


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained RTMDet-nano as an ONNX Runtime artifact, made as a user makes it."""
    out = tmp_path_factory.mktemp("detector")
    return rtmw_edge.export(need(MODELS_DIR / "rtmdet-nano.onnx"), "onnxruntime", out=out).artifact.folder


@pytest.fixture(scope="module")
def pose(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pattern_artifact(tmp_path_factory.mktemp("pose") / "untrained")


@pytest.fixture(scope="module")
def predictor(pose: Path, detector: Path) -> Predictor:
    return Predictor(pose, detector=detector, threads=1)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.imread(str(need(MINI_DIR / FIVE_PEOPLE)))


@pytest.fixture(scope="module")
def clip(predictor: Predictor, photo: np.ndarray) -> Clip:
    people = predictor.detector.detect(photo)
    assert len(people) == PEOPLE  # the trained detector finds the five skiers
    return panning_zooming_clip(photo, people, FRAMES)


def _run(stream: PoseStream, frames: list[np.ndarray]) -> list[list[Person]]:
    return [stream(frame) for frame in frames]


def _who(persons: list[Person], truth: np.ndarray) -> dict[int, int]:
    """track id -> the index of the true person its box overlaps most (IoU above 0.5), for one frame."""
    if not persons:
        return {}
    iou = box_iou(np.stack([p.box for p in persons]), truth)
    return {p.track_id: int(iou[i].argmax()) for i, p in enumerate(persons)
            if iou[i].max() > 0.5 and p.track_id is not None}


# --------------------------------------------------------------------------------------------- tracking

@pytest.mark.parametrize("det_every", [1, 5])
def test_each_of_five_moving_people_keeps_one_id_through_the_clip(predictor, clip, det_every):
    stream = PoseStream(predictor, det_every=det_every, track=True)
    frames = _run(stream, clip.frames)
    assert stream.detections == math.ceil(FRAMES / det_every)  # everyone stays in view: no extra detector runs
    ids = {p.track_id for persons in frames for p in persons} - {None}
    assert len(ids) <= PEOPLE  # nobody leaves the view, so five people may use five ids and no more
    assert sum(sum(p.track_id is not None for p in persons) == PEOPLE for persons in frames) >= 0.9 * FRAMES
    owner: dict[int, set[int]] = {}
    for persons, truth in zip(frames, clip.boxes, strict=True):
        for track_id, person in _who(persons, truth).items():
            owner.setdefault(track_id, set()).add(person)
    assert sorted(owner) == sorted(ids) and all(len(people) == 1 for people in owner.values()), owner  # no swaps
    assert sorted(next(iter(p)) for p in owner.values()) == list(range(PEOPLE))


def test_without_track_persons_have_no_id_and_the_same_keypoints_as_the_predictor(predictor, clip):
    frame = clip.frames[0]
    streamed = PoseStream(predictor)(frame)
    direct = predictor.predict(frame)
    assert [p.track_id for p in streamed] == [None] * len(direct)
    assert all(np.array_equal(a.keypoints, b.keypoints) for a, b in zip(streamed, direct, strict=True))


def test_reset_starts_a_new_clip_and_ids_are_never_reused(predictor, clip):
    stream = PoseStream(predictor, det_every=5, track=True)
    first = {p.track_id for persons in _run(stream, clip.frames[:10]) for p in persons}
    stream.reset()
    second = {p.track_id for persons in _run(stream, clip.frames[:10]) for p in persons}
    assert len(first) == len(second) == PEOPLE and not first & second
    assert stream.detections == 2  # frames 0 and 5 of the new clip


def test_frames_a_camera_dropped_are_skipped_over_and_a_frame_from_the_past_is_refused(predictor, clip):
    stream = PoseStream(predictor, det_every=5, track=True)
    first = stream(clip.frames[0], 0)
    later = stream(clip.frames[3], 3)  # frames 1 and 2 dropped: the boxes are carried over them
    assert stream.detections == 1 and [p.track_id for p in later] == [p.track_id for p in first]
    with pytest.raises(RtmwEdgeError, match="frame 3 does not come after frame 3: call reset"):
        stream(clip.frames[3], 3)


def _person(x: float, y: float, size: float = 100.0) -> Person:
    """A person whose body keypoints fill its box in a fixed pattern, all confident."""
    pattern = np.random.default_rng(0).uniform(0, 1, (133, 2))
    keypoints = (np.array([x, y]) + pattern * size).astype(np.float32)
    return Person(keypoints, np.ones(133, np.float32), np.array([x, y, x + size, y + size], np.float32), 0.9)


def test_a_person_missed_a_few_frames_keeps_their_id_one_gone_longer_comes_back_with_a_new_one():
    tracker = Tracker(max_missed=3)
    a, b = (t.track_id for t in tracker.match([_person(0, 0), _person(300, 0)], 0))
    for index in (1, 2, 3):  # b is not seen on frames 1-3 (3 frames missed: still the same person)
        assert [t.track_id for t in tracker.match([_person(2 * index, 0)], index)] == [a]
    assert [t.track_id for t in tracker.match([_person(8, 0), _person(305, 0)], 4)] == [a, b]
    for index in range(5, 10):  # b gone 5 frames: ended
        tracker.match([_person(2 * index, 0)], index)
    assert [t.track_id for t in tracker.match([_person(20, 0), _person(305, 0)], 10)] == [a, None]
    assert [t.track_id for t in tracker.match([_person(22, 0), _person(305, 0)], 11)] == [a, b + 1]  # a new id


def test_someone_found_on_one_detector_frame_only_uses_up_no_id_and_a_newcomer_gets_one_when_found_twice():
    tracker = Tracker()
    (a,) = (t.track_id for t in tracker.match([_person(0, 0)], 0))  # the clip's start: an id at once
    assert [t.track_id for t in tracker.match([_person(1, 0), _person(500, 0)], 1)] == [a, None]  # a stray box
    assert [t.track_id for t in tracker.match([_person(2, 0), _person(300, 300)], 2)] == [a, None]  # a newcomer
    assert [t.track_id for t in tracker.match([_person(3, 0), _person(301, 300)], 3)] == [a, a + 1]


def test_ids_follow_keypoints_when_boxes_do_not_overlap():
    """A fast mover's box no longer overlaps its last one, but its body keypoints still agree (OKS)."""
    tracker = Tracker()
    first = tracker.match([_person(0, 0, 400)], 0)[0].track_id
    moved = _person(150, 0, 400)
    moved = Person(tracker.tracks[0].person.keypoints + np.float32(10), moved.scores, np.array(
        [150, 300, 250, 400], np.float32), 0.9)  # a box that hardly overlaps, keypoints 10 px away
    assert tracker.match([moved], 1)[0].track_id == first


def test_between_detections_a_box_moves_and_scales_as_its_keypoints_did():
    before = _person(100, 100)
    middle = np.median(before.keypoints, axis=0)  # 10% larger about it, then 6 px right and 4 px up
    now = Person((middle + (before.keypoints - middle) * 1.1 + [6, -4]).astype(np.float32), before.scores,
                 before.box, 0.9)
    box = carried_box(Track(1, now, 1, previous=before))
    assert np.allclose(box, [95 + 6, 95 - 4, 205 + 6, 205 - 4], atol=0.01)
    assert np.array_equal(carried_box(Track(1, now, 1)), now.box)  # just detected: the detector's box


# -------------------------------------------------------------------------------------------- smoothing

def test_smoothed_keypoints_move_less_from_frame_to_frame_than_raw_ones_on_a_still_clip(predictor, photo):
    frames = still_clip(photo, frames=30)

    def jitter(smooth: bool) -> float:
        moves: list[float] = []
        last: dict[int, np.ndarray] = {}
        for persons in _run(PoseStream(predictor, track=True, smooth=smooth), frames):
            for p in persons:
                if p.track_id in last:
                    moves.append(float(np.linalg.norm(p.keypoints - last[p.track_id], axis=1).mean()))
                last[p.track_id] = p.keypoints
        return float(np.mean(moves))

    raw, smoothed = jitter(False), jitter(True)
    assert raw > 0.05  # the noise moves the detector's boxes, and the keypoints with them
    assert smoothed < 0.75 * raw, (raw, smoothed)


def test_one_euro_steadies_a_still_point_and_keeps_up_with_a_moving_one():
    """mmpose's parameters: the cutoff rises by 0.7 per pixel of speed, so sub-pixel noise is what they damp."""
    rng = np.random.default_rng(0)
    noisy = 100.0 + rng.normal(0, 0.5, (60, 1, 2))
    still, moving, scores = OneEuro(), OneEuro(OneEuroParams()), np.ones(1)
    steadied = np.stack([still(point, scores, i) for i, point in enumerate(noisy)])
    assert np.abs(np.diff(steadied[10:], axis=0)).mean() < 0.7 * np.abs(np.diff(noisy[10:], axis=0)).mean()
    followed = [moving(np.array([[10.0 * i, 0.0]]), scores, i)[0] for i in range(60)]
    assert abs(followed[-1][0] - 590.0) < 1.0  # at 10 px per frame it lags by a tenth of a frame


def test_one_euro_passes_unseen_keypoints_through_and_restarts_them():
    euro = OneEuro()
    euro(np.array([[0.0, 0.0]]), np.ones(1), 0)
    hidden = euro(np.array([[-1.0, -1.0]]), np.zeros(1), 1)
    assert hidden.tolist() == [[-1.0, -1.0]]
    assert euro(np.array([[50.0, 50.0]]), np.ones(1), 2).tolist() == [[50.0, 50.0]]  # no pull towards 0, 0


# ------------------------------------------------------------------------------------------------- CLI

@pytest.fixture(scope="module")
def clip_file(clip, tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "skiers.mp4", clip.frames, fps=15.0)


def test_predict_a_video_with_det_every_track_and_smooth_writes_json_lines_and_an_annotated_video(
        pose, detector, clip_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["predict", str(clip_file), "--model", str(pose), "--detector", str(detector), "--threads", "1",
                     "--det-every", "5", "--track", "--smooth", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0 and f"{FRAMES} frames" in stdout
    records = [json.loads(line) for line in (out / "skiers_frames.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(FRAMES))
    assert [r["time_s"] for r in records[:3]] == [0.0, round(1 / 15, 4), round(2 / 15, 4)]
    person = records[0]["persons"][0]
    assert {"track_id", "box", "keypoints", "scores"} <= set(person)
    assert len(person["keypoints"]) == len(person["scores"]) == 133 and len(person["box"]) == 4
    assert len({p["track_id"] for r in records for p in r["persons"]} - {None}) <= PEOPLE
    capture = cv2.VideoCapture(str(out / "skiers_pose.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    capture.release()


def test_det_every_below_1_is_one_line_and_exit_2(pose, clip_file, tmp_path, capsys):
    code = cli.main(["predict", str(clip_file), "--model", str(pose), "--det-every", "0", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--det-every must be at least 1" in err
    assert not (tmp_path / "o").exists()


def test_show_without_a_display_is_one_line_before_any_work(pose, clip_file, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code = cli.main(["predict", str(clip_file), "--model", str(pose), "--show", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--show needs a display" in err
    assert not (tmp_path / "o").exists()


def _predict_process(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rtmw_edge.cli", "predict", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_camera_that_does_not_exist_is_one_line_and_leaves_nothing(pose, tmp_path):
    """In a fresh process: OpenCV's own notes on the missing device would land on stderr beside ours."""
    done = _predict_process("9", "--model", str(pose), "--detector", "none", "--track", "--out", str(tmp_path / "o"))
    stdout, stderr = done.communicate(timeout=120)
    assert done.returncode == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "cannot open camera 9" in stderr, stderr
    assert not (tmp_path / "o").exists()


def test_ctrl_c_ends_a_video_with_whole_json_lines_and_a_playable_video(pose, detector, clip, tmp_path):
    video = write_video(tmp_path / "long.mp4", clip.frames * 10)  # 600 frames: seconds of work
    out = tmp_path / "out"
    run = _predict_process(str(video), "--model", str(pose), "--detector", str(detector), "--threads", "1",
                           "--det-every", "5", "--track", "--out", str(out))
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 50_000 for p in out.glob(".staged.*/long_frames.jsonl")):  # some frames done
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 130 and stderr == "", stderr
    assert stdout.count("\n") == 1 and "stopped by Ctrl-C after" in stdout
    lines = (out / "long_frames.jsonl").read_text().splitlines()
    assert 0 < len(lines) < len(clip.frames) * 10
    assert [json.loads(line)["frame"] for line in lines] == list(range(len(lines)))
    capture = cv2.VideoCapture(str(out / "long_pose.mp4"))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    assert decoded == len(lines)
    assert f"after {len(lines)} frames" in stdout


# ----------------------------------------------------------------------------------------------- bench

def test_bench_measures_frames_per_second_over_a_video_with_the_det_every_given(pose, detector, clip_file,
                                                                                 tmp_path, capsys):
    out = tmp_path / "bench"
    code = cli.main(["bench", str(pose), "--detector", str(detector), "--video", str(clip_file), "--det-every", "5",
                     "--threads", "1", "--runs", "2", "--batch", "1", "--out", str(out)])
    assert code == 0 and "video fps (det every 5)" in capsys.readouterr().out
    results = read_results(out / "results.json")
    video = results.settings.video
    assert (video.frames, video.det_every, video.width) == (FRAMES, 5, CLIP_WIDTH)
    fps = results.artifacts[0].video_fps
    assert len(fps.runs) == video.rounds and min(fps.runs) <= fps.p50 <= max(fps.runs) and fps.p50 > 0
    assert "frames per second over" in (out / "report.md").read_text()


def test_bench_video_without_a_detector_is_one_line_and_exit_2(pose, clip_file, tmp_path, capsys):
    assert cli.main(["bench", str(pose), "--video", str(clip_file), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--video needs --detector" in err
    assert not (tmp_path / "b").exists()


def test_wholebody_frame_after_frame_tracks_and_reset_starts_a_new_clip(pose, detector, clip):
    """The two-line API with det_every/track gives the same ids as the stream it wraps; boxes are refused."""
    from rtmw_edge import Wholebody

    wholebody = Wholebody(pose, detector=detector, threads=1, det_every=5, track=True, progress=False)
    first = {p.track_id for frame in clip.frames[:10] for p in wholebody(frame)} - {None}
    wholebody.reset()
    second = {p.track_id for frame in clip.frames[:10] for p in wholebody(frame)} - {None}
    assert len(first) == len(second) == PEOPLE and not first & second
    with pytest.raises(RtmwEdgeError, match="boxes cannot be given frame by frame"):
        wholebody(clip.frames[0], np.array([[0, 0, 10, 10]], np.float32))
    plain = Wholebody(pose, detector=detector, threads=1, progress=False)
    assert all(p.track_id is None for p in plain(clip.frames[0]))
