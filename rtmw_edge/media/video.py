"""Predict on every frame of a video file or a camera: `<stem>_pose.mp4` (the overlays) and `<stem>_frames.jsonl`
(one JSON line per frame: its index, time and persons).

A file that yields clearly fewer frames than its container reports is damaged or cut short: an error, rather than
a result that silently covers part of the video.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.media.outputs import Outputs, Summary, person_record
from rtmw_edge.predictor import Predictor
from rtmw_edge.visualize import draw_persons

logger = logging.getLogger(__name__)

VIDEO_FOURCC = "mp4v"
FALLBACK_FPS = 30.0  # cameras and some containers report no frame rate
# Some containers estimate their frame count from duration x rate; missing more than this means a damaged file.
MISSING_FRAMES_FRACTION = 0.05
MISSING_FRAMES_MIN = 2
FFMPEG_LOGLEVEL_ENV = "OPENCV_FFMPEG_LOGLEVEL"
FFMPEG_QUIET = "-8"  # AV_LOG_QUIET


def quiet_ffmpeg() -> None:
    """Silence FFmpeg's own notes on damaged files ('moov atom not found'), which its C code prints on stderr
    around our one-line error. For command-line processes; OpenCV reads it when it opens its first video."""
    os.environ.setdefault(FFMPEG_LOGLEVEL_ENV, FFMPEG_QUIET)


def stream_outputs(source: Path | int, out_dir: Path) -> list[Path]:
    """The files `predict_stream` writes: the annotated video and the frames' JSON lines."""
    stem = f"camera{source}" if isinstance(source, int) else source.stem
    return [out_dir / f"{stem}_pose.mp4", out_dir / f"{stem}_frames.jsonl"]


def predict_stream(predictor: Predictor, source: Path | int, out_dir: Path, outputs: Outputs, summary: Summary,
                   kpt_threshold: float, progress: bool) -> None:
    """Every frame of a video file, or of a camera until it stops or Ctrl-C (what was recorded is kept)."""
    live = isinstance(source, int)
    video, frames_file = stream_outputs(source, out_dir)
    capture = cv2.VideoCapture(source if live else str(source))
    try:
        if not capture.isOpened():
            raise RtmwEdgeError(f"cannot open {'camera ' if live else ''}{source} as a video source")
        fps = capture.get(cv2.CAP_PROP_FPS) or FALLBACK_FPS
        total = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0) or None  # cameras report -1
        writer = _open_writer(outputs.new_video(video), fps, capture)
        try:
            with outputs.new_file(frames_file).open("w", encoding="utf-8") as lines, logging_redirect_tqdm():
                frames = tqdm(_frames(capture), total=total, desc="predict", unit="frame", disable=not progress)
                read = _predict_frames(predictor, frames, writer, lines, fps, summary, kpt_threshold, live)
        finally:
            writer.release()
    finally:
        capture.release()
    if not read:
        raise RtmwEdgeError(f"{source}: no frame could be read")
    if not live and total and total - read > max(MISSING_FRAMES_MIN, MISSING_FRAMES_FRACTION * total):
        raise RtmwEdgeError(f"{source}: only {read} of the {total} frames its container reports could be read "
                            "(the file is cut short or damaged)")


def _predict_frames(predictor: Predictor, frames: Iterator[np.ndarray], writer: cv2.VideoWriter, lines: TextIO,
                    fps: float, summary: Summary, kpt_threshold: float, live: bool) -> int:
    """Predict, draw and record each frame; returns how many were done."""
    done = 0
    try:
        for frame in frames:
            persons = predictor.predict(frame)
            writer.write(draw_persons(frame, persons, kpt_threshold))
            record = {"frame": done, "time_s": done / fps, "persons": [person_record(done, p) for p in persons]}
            lines.write(json.dumps(record) + "\n")
            done += 1
            summary.frames += 1
            summary.persons += len(persons)
    except KeyboardInterrupt:
        if not live:
            raise
        logger.warning("camera stopped by Ctrl-C after %d frames", done)
    return done


def _frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield frame


def _open_writer(path: Path, fps: float, capture: cv2.VideoCapture) -> cv2.VideoWriter:
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, size)
    if not writer.isOpened():
        raise RtmwEdgeError(f"OpenCV cannot write {VIDEO_FOURCC} video to {path.parent} (size {size}, {fps} fps)")
    return writer
