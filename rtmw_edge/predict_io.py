"""Run a Predictor over an image, a folder of images, a video file or a camera, and write what it finds.

Images give `predictions.json` (COCO-WholeBody results that rtmw_edge.evaluation and xtcocotools read, plus
`file_name`, `box` and `box_score`) and one `<stem>_pose.jpg` overlay each; a video or camera gives
`<stem>_pose.mp4` and `<stem>_frames.jsonl`, one JSON line per frame. Each file is written to a temporary name
and renamed when complete, and existing outputs are refused unless `overwrite` is set.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.evaluation import to_result_entry
from rtmw_edge.fileio import atomic_file, ensure_writable_dir
from rtmw_edge.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from rtmw_edge.predictor import Person, Predictor
from rtmw_edge.visualize import draw_persons

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.json"
OVERLAY_FORMAT = ".jpg"
VIDEO_FOURCC = "mp4v"
FALLBACK_FPS = 30.0  # cameras and some containers report no frame rate


@dataclass
class Summary:
    """What one run did, for the one-line report."""

    out_dir: Path
    model: str
    trained: bool
    images: int = 0
    frames: int = 0
    persons: int = 0
    skipped: int = 0

    def line(self) -> str:
        done = f"{self.frames} frames" if self.frames else f"{self.images} images"
        untrained = "; the model is UNTRAINED: its keypoints are meaningless" if not self.trained else ""
        return (f"{done}, {self.persons} persons, {self.skipped} skipped -> {self.out_dir} "
                f"[{self.model}]{untrained}")


def predict_source(predictor: Predictor, source: str | Path, out_dir: str | Path, kpt_threshold: float = 0.3,
                   overwrite: bool = False, progress: bool = True) -> Summary:
    """Dispatch on what `source` is: a folder, a video file, an image file, or a camera index ('0')."""
    path = Path(source)
    out_dir = Path(out_dir)
    summary = Summary(out_dir, predictor.info, predictor.trained)
    if not path.exists() and str(source).isdigit():
        return _predict_stream(predictor, int(str(source)), summary, kpt_threshold, overwrite, progress)
    if path.is_dir():
        return _predict_images(predictor, _folder_images(path, summary), summary, kpt_threshold, overwrite,
                               progress, skip_unreadable=True)
    if not path.is_file():
        raise RtmwEdgeError(f"{path} does not exist (expected an image, a folder, a video or a camera index)")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _predict_stream(predictor, path, summary, kpt_threshold, overwrite, progress)
    return _predict_images(predictor, [path], summary, kpt_threshold, overwrite, progress=False,
                           skip_unreadable=False)


# ------------------------------------------------------------------------------------------------- images

def _folder_images(folder: Path, summary: Summary) -> list[Path]:
    """The folder's image files, sorted by name; every other file is reported and counted as skipped."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    for other in sorted(set(files) - set(images)):
        logger.warning("skipped %s: not an image file (%s)", other, ", ".join(sorted(IMAGE_SUFFIXES)))
        summary.skipped += 1
    return images


def _predict_images(predictor: Predictor, files: Sequence[Path], summary: Summary, kpt_threshold: float,
                    overwrite: bool, progress: bool, skip_unreadable: bool) -> Summary:
    overlays = [summary.out_dir / name for name in _overlay_names(files)]
    predictions = summary.out_dir / PREDICTIONS_FILE
    _refuse_existing([predictions, *overlays], overwrite)
    entries: list[dict] = []
    with logging_redirect_tqdm():
        for file, image_id, overlay in tqdm(list(zip(files, _image_ids(files), overlays, strict=True)),
                                            desc="predict", unit="image", disable=not progress):
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                if not skip_unreadable:
                    raise RtmwEdgeError(f"{file} cannot be read as an image (nor is its suffix a video's)")
                logger.warning("skipped %s: cannot be read as an image", file)
                summary.skipped += 1
                continue
            persons = predictor.predict(image)
            entries.extend({**_entry(image_id, person), "file_name": file.name} for person in persons)
            _write_jpeg(overlay, draw_persons(image, persons, kpt_threshold), overwrite)
            summary.images += 1
            summary.persons += len(persons)
    with atomic_file(predictions, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(entries), encoding="utf-8")
    return summary


def _image_ids(files: Sequence[Path]) -> list[int]:
    """COCO's ids for files named by them (000000000785.jpg -> 785), else the next id no file name claims."""
    claimed = {int(f.stem) for f in files if f.stem.isdigit()}
    free = (i for i in itertools.count(1) if i not in claimed)
    return [int(f.stem) if f.stem.isdigit() else next(free) for f in files]


def _overlay_names(files: Sequence[Path]) -> list[str]:
    """`<stem>_pose.jpg`; files that share a stem (a.jpg, a.png) keep their suffix in it so none overwrites another."""
    stems = Counter(f.stem for f in files)
    return [f"{f.stem}_pose{OVERLAY_FORMAT}" if stems[f.stem] == 1 else f"{f.stem}_{f.suffix[1:]}_pose{OVERLAY_FORMAT}"
            for f in files]


def _write_jpeg(path: Path, image: np.ndarray, overwrite: bool) -> None:
    ok, encoded = cv2.imencode(OVERLAY_FORMAT, image)
    if not ok:
        raise RtmwEdgeError(f"OpenCV cannot encode {path.name}")
    with atomic_file(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(encoded.tobytes())


# ------------------------------------------------------------------------------------------ video / camera

def _predict_stream(predictor: Predictor, source: Path | int, summary: Summary, kpt_threshold: float,
                    overwrite: bool, progress: bool) -> Summary:
    """Every frame of a video file, or of a camera until it stops or Ctrl-C (what was recorded is kept)."""
    live = isinstance(source, int)
    stem = f"camera{source}" if live else source.stem
    video, frames_file = summary.out_dir / f"{stem}_pose.mp4", summary.out_dir / f"{stem}_frames.jsonl"
    _refuse_existing([video, frames_file], overwrite)
    capture = cv2.VideoCapture(source if live else str(source))
    try:
        if not capture.isOpened():
            raise RtmwEdgeError(f"cannot open {'camera ' if live else ''}{source} as a video source")
        fps = capture.get(cv2.CAP_PROP_FPS) or FALLBACK_FPS
        total = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0) or None  # cameras report -1
        with _atomic_video(video, overwrite) as scratch, atomic_file(frames_file, overwrite=overwrite) as lines_tmp:
            writer = _open_writer(scratch, fps, capture)
            try:
                with lines_tmp.open("w", encoding="utf-8") as lines, logging_redirect_tqdm():
                    frames = tqdm(_frames(capture), total=total, desc="predict", unit="frame", disable=not progress)
                    _predict_frames(predictor, frames, writer, lines, fps, summary, kpt_threshold, live)
            finally:
                writer.release()
            if not summary.frames:
                raise RtmwEdgeError(f"{source}: no frame could be read")
    finally:
        capture.release()
    return summary


def _predict_frames(predictor: Predictor, frames: Iterator[np.ndarray], writer: cv2.VideoWriter, lines,
                    fps: float, summary: Summary, kpt_threshold: float, live: bool) -> None:
    try:
        for index, frame in enumerate(frames):
            persons = predictor.predict(frame)
            writer.write(draw_persons(frame, persons, kpt_threshold))
            record = {"frame": index, "time_s": index / fps, "persons": [_entry(index, p) for p in persons]}
            lines.write(json.dumps(record) + "\n")
            summary.frames += 1
            summary.persons += len(persons)
    except KeyboardInterrupt:
        if not live:
            raise
        logger.warning("camera stopped by Ctrl-C after %d frames", summary.frames)


def _frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield frame


@contextlib.contextmanager
def _atomic_video(path: Path, overwrite: bool) -> Iterator[Path]:
    """atomic_file for VideoWriter, which picks the container from the file suffix (a .part name would fail)."""
    with atomic_file(path, overwrite=overwrite) as tmp:
        scratch = tmp.with_name(tmp.name + path.suffix)
        try:
            yield scratch
            os.replace(scratch, tmp)
        finally:
            scratch.unlink(missing_ok=True)


def _open_writer(path: Path, fps: float, capture: cv2.VideoCapture) -> cv2.VideoWriter:
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, size)
    if not writer.isOpened():
        raise RtmwEdgeError(f"OpenCV cannot write {VIDEO_FOURCC} video to {path.parent} (size {size}, {fps} fps)")
    return writer


# ---------------------------------------------------------------------------------------------- shared

def _entry(image_id: int, person: Person) -> dict:
    """A COCO-WholeBody result entry, plus the person's box so the output says where each person was found."""
    entry = to_result_entry(image_id, person.keypoints, person.scores, person.score)
    return {**entry, "box": person.box.tolist(), "box_score": person.box_score}


def _refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    """Fail before any work when an output exists, instead of after minutes of inference."""
    ensure_writable_dir(paths[0].parent)
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise RtmwEdgeError(f"{existing[0]} already exists{more}: use --overwrite to replace")
