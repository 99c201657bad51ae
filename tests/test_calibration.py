"""Calibration sets are the inference preprocessing of real people, reproducible, cached, and fail clearly."""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from oracle import MINI_DIR, MODELS_DIR, need

from rtmw_edge import topdown
from rtmw_edge.detector import Detector, letterbox
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.quantization.calibration import detector_calibration, pose_calibration
from rtmw_edge.quantization.calibration_sources import shipped_calibration_dir

HW = (64, 48)  # small inputs keep the tests fast; the pipeline is the same at 256x192
GT_FILE = MINI_DIR / "example_wholebody_val.json"
SHIPPED = ("astronaut.jpg", "camera.jpg", "grace_hopper.jpg")


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test caches into its own folder, never into the user's cache."""
    home = tmp_path / "cache"
    monkeypatch.setenv("RTMW_EDGE_CACHE", str(home))
    return home


def _image(name: str) -> np.ndarray:
    return cv2.imread(str(shipped_calibration_dir() / name), cv2.IMREAD_COLOR)


def _whole_box(image: np.ndarray) -> np.ndarray:
    return np.array([[0, 0, image.shape[1], image.shape[0]]], np.float32)


def _write_video(path: Path, frames: int) -> list[np.ndarray]:
    """A small mp4 of the astronaut, darker each frame; returns the frames as OpenCV decodes them back."""
    base = cv2.resize(_image("astronaut.jpg"), (128, 96))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (128, 96))
    for i in range(frames):
        writer.write(cv2.convertScaleAbs(base, alpha=1.0 - 0.1 * i))
    writer.release()
    capture = cv2.VideoCapture(str(path))
    decoded = [capture.read()[1] for _ in range(frames)]
    capture.release()
    return decoded


# ------------------------------------------------------------------------------------------- shipped set


def test_shipped_photos_are_found_and_small() -> None:
    folder = shipped_calibration_dir()
    assert sorted(p.name for p in folder.glob("*.jpg")) == sorted(SHIPPED)
    assert {"README.md", "sources.toml"} <= {p.name for p in folder.iterdir()}
    assert sum(p.stat().st_size for p in folder.iterdir()) < 1_000_000


def test_shipped_set_builds_300_distinct_crops_and_the_seed_decides_them() -> None:
    first = pose_calibration(None, HW, size=300, cache=False)
    again = pose_calibration(None, HW, size=300, cache=False)
    other = pose_calibration(None, HW, size=300, seed=1, cache=False)

    assert first.inputs.shape == (300, 3, *HW) and first.inputs.dtype == np.float32
    assert np.isfinite(first.inputs).all()
    assert len({crop.tobytes() for crop in first.inputs}) == 300  # every crop augmented differently
    assert len(first.sources) == 300 and {s.split("#")[0] for s in first.sources} == set(SHIPPED)
    assert again.sha256 == first.sha256 and np.array_equal(again.inputs, first.inputs)
    assert other.sha256 != first.sha256


def test_cache_hit_is_identical_and_faster_than_building(cache_home: Path) -> None:
    start = time.perf_counter()
    built = pose_calibration(None, HW, size=300)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    hit = pose_calibration(None, HW, size=300)
    hit_s = time.perf_counter() - start

    assert len(list((cache_home / "calibration").glob("*.npz"))) == 1
    assert hit.sha256 == built.sha256 and np.array_equal(hit.inputs, built.inputs)
    assert hit.sources == built.sources and hit.description == built.description
    assert hit_s < build_s


def test_cached_file_is_what_a_hit_returns_and_a_damaged_one_is_rebuilt(cache_home: Path) -> None:
    built = pose_calibration(None, HW, size=8)
    cached = next((cache_home / "calibration").glob("*.npz"))
    with cached.open("wb") as f:
        np.savez(f, inputs=np.zeros_like(built.inputs), sources=np.array(built.sources),
                 description=np.array(built.description))
    assert not pose_calibration(None, HW, size=8).inputs.any()

    cached.write_bytes(b"not a zip file")
    assert pose_calibration(None, HW, size=8).sha256 == built.sha256


def test_unaugmented_crops_are_exactly_topdown_crop_of_their_box() -> None:
    calib = pose_calibration(None, HW, size=3, augment=False, cache=False)

    assert sorted(calib.sources) == sorted(f"{name}#0" for name in SHIPPED)
    for crop, source in zip(calib.inputs, calib.sources, strict=True):
        image = _image(source.split("#")[0])
        np.testing.assert_array_equal(crop, topdown.crop(image, _whole_box(image), HW).batch[0])


# ------------------------------------------------------------------------------------------- folders


def test_folder_skips_and_counts_files_that_are_not_readable_images(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(shipped_calibration_dir() / "astronaut.jpg", folder / "nested" / "astronaut.jpg")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (folder / ".hidden.jpg").write_bytes(b"left out, not counted")

    calib = pose_calibration(folder, HW, size=5, cache=False)

    assert calib.inputs.shape == (5, 3, *HW)
    assert set(calib.sources) == {"nested/astronaut.jpg#0"}
    assert "2 files skipped" in calib.description
    assert "notes.txt" in calib.description and "broken.jpg" in calib.description


def test_folder_without_a_readable_image_says_how_many_files_were_skipped(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(RtmwEdgeError, match=r"no image in calibration folder .*1 file skipped"):
        pose_calibration(tmp_path, HW, size=4, cache=False)
    (tmp_path / "broken.jpg").write_bytes(b"garbage")
    with pytest.raises(RtmwEdgeError, match=r"no readable image in folder .*2 files skipped"):
        pose_calibration(tmp_path, HW, size=4, cache=False)


def test_tiny_images_warn_in_one_line_how_many_are_below_half_the_network_input(tmp_path: Path, caplog) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    photo = _image("astronaut.jpg")
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(folder / name), cv2.resize(photo, (6, 8)))  # 8x6 px: upsampled noise at 64x48
    cv2.imwrite(str(folder / "large.png"), cv2.resize(photo, (48, 64)))

    with caplog.at_level(logging.WARNING, logger="rtmw_edge.quantization.calibration"):
        calib = pose_calibration(folder, HW, size=6, cache=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "2 of 3 images are smaller than 50% of the network input (64x48)" in warnings[0]
    assert "2 of 3 images are smaller than 50%" in calib.description

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rtmw_edge.quantization.calibration"):
        pose_calibration(None, HW, size=3, cache=False)
    assert not caplog.records


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RtmwEdgeError, match="is empty"):
        pose_calibration(tmp_path, HW, size=4, cache=False)


def test_detector_finds_the_boxes_through_detector_detect() -> None:
    detector = Detector(need(MODELS_DIR / "rtmdet-nano.onnx"), threads=1)
    calib = pose_calibration(None, HW, size=3, augment=False, detector=detector, cache=False)

    assert "boxes from rtmdet-nano.onnx" in calib.description
    for crop, source in zip(calib.inputs, calib.sources, strict=True):
        name, k = source.split("#")
        image = _image(name)
        boxes = detector.detect(image)[:, :4]
        np.testing.assert_array_equal(crop, topdown.crop(image, boxes, HW).batch[int(k)])
        assert not np.array_equal(crop, topdown.crop(image, _whole_box(image), HW).batch[0])


# ------------------------------------------------------------------------------------------- COCO JSON


def test_coco_json_gives_one_crop_per_ground_truth_person() -> None:
    calib = pose_calibration(need(GT_FILE), HW, size=26, augment=False, cache=False)

    annotations = json.loads(GT_FILE.read_text())
    assert len(set(calib.sources)) == 26 and "ground-truth boxes" in calib.description
    for image_info in annotations["images"]:
        boxes = np.array([a["bbox"] for a in annotations["annotations"] if a["image_id"] == image_info["id"]])
        boxes[:, 2:] += boxes[:, :2]
        expected = topdown.crop(cv2.imread(str(MINI_DIR / image_info["file_name"])), boxes, HW).batch
        for crop, source in zip(calib.inputs, calib.sources, strict=True):
            name, k = source.split("#")
            if name == image_info["file_name"]:
                np.testing.assert_array_equal(crop, expected[int(k)])


def test_asking_for_more_crops_than_people_without_augmentation_fails_with_advice() -> None:
    with pytest.raises(RtmwEdgeError, match=r"only 26 person crops in .*asked for 27: add images, lower the size "
                                            r"or enable augmentation"):
        pose_calibration(need(GT_FILE), HW, size=27, augment=False, cache=False)


def test_coco_json_away_from_its_images_names_the_missing_file_and_where_it_looked(tmp_path: Path) -> None:
    moved = tmp_path / "val.json"
    shutil.copy(need(GT_FILE), moved)
    with pytest.raises(RtmwEdgeError, match=rf"image 000000000785\.jpg is not in {re.escape(str(tmp_path))}"):
        pose_calibration(moved, HW, size=4, cache=False)

    assert pose_calibration(moved, HW, size=4, images_dir=MINI_DIR, cache=False).inputs.shape == (4, 3, *HW)


def test_json_that_is_not_coco_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2, 3]")
    with pytest.raises(RtmwEdgeError, match="is not a COCO annotation file"):
        pose_calibration(path, HW, size=4, cache=False)


# ------------------------------------------------------------------------------------------- video


def test_video_frames_are_sampled_evenly_and_cropped_as_at_inference(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    frames = _write_video(video, 5)

    every = pose_calibration(video, HW, size=5, augment=False, cache=False)
    sampled = pose_calibration(video, HW, size=3, augment=False, cache=False)

    assert sorted(every.sources) == [f"clip.mp4@{i}#0" for i in range(5)]
    assert sorted(sampled.sources) == ["clip.mp4@0#0", "clip.mp4@2#0", "clip.mp4@4#0"]
    for crop, source in zip(every.inputs, every.sources, strict=True):
        frame = frames[int(source.split("@")[1].split("#")[0])]
        np.testing.assert_array_equal(crop, topdown.crop(frame, _whole_box(frame), HW).batch[0])


def test_video_that_cannot_be_opened_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not a video at all")
    with pytest.raises(RtmwEdgeError, match=r"cannot open .*clip\.mp4 as a video"):
        pose_calibration(path, HW, size=4, cache=False)


# ------------------------------------------------------------------------------------------- detector input


def test_detector_calibration_is_letterbox_of_each_frame() -> None:
    calib = detector_calibration(None, (320, 320), size=3, augment=False, cache=False)

    for frame, source in zip(calib.inputs, calib.sources, strict=True):
        np.testing.assert_array_equal(frame, letterbox(_image(source.split("#")[0]), (320, 320))[0][0])
    augmented = detector_calibration(None, (320, 320), size=6, cache=False)
    assert augmented.inputs.shape == (6, 3, 320, 320)
    with pytest.raises(RtmwEdgeError, match=r"only 3 frames in the shipped calibration photos, asked for 4"):
        detector_calibration(None, (320, 320), size=4, augment=False, cache=False)


# ------------------------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize("size", [0, -5])
def test_size_must_be_positive(size: int) -> None:
    with pytest.raises(RtmwEdgeError, match=f"size must be a positive number of inputs, got {size}"):
        pose_calibration(None, HW, size=size, cache=False)


def test_missing_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RtmwEdgeError, match=r"calibration source .*nowhere does not exist"):
        pose_calibration(tmp_path / "nowhere", HW, size=4, cache=False)
