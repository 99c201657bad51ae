"""Predict on every frame of a video file or a camera: `<stem>_pose.mp4` (the overlays, a colour per tracked
person) and `<stem>_frames.jsonl` (one JSON line per frame: its index, time and persons).

Frames are decoded on a thread while the networks run (rtmw_edge.video.FrameReader); the detector runs every
`det_every` frames, `track` gives each person an id, `smooth` steadies the keypoints (rtmw_edge.video.PoseStream).
Ctrl-C (or q / Esc in the --show window) ends the run after the frame in hand: the outputs are kept, every JSON
line whole and the video playable. A file that yields clearly fewer frames than its container reports is
damaged or cut short: an error, rather than a result that silently covers part of the video.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.media.outputs import Outputs, Summary, fields_3d
from rtmw_edge.predictor import Person, Predictor
from rtmw_edge.video import Frame, FrameReader, PoseStream
from rtmw_edge.visualize import draw_persons

VIDEO_FOURCC = "mp4v"
# Some containers estimate their frame count from duration x rate; missing more than this means a damaged file.
MISSING_FRAMES_FRACTION = 0.05
MISSING_FRAMES_MIN = 2
FFMPEG_LOGLEVEL_ENV = "OPENCV_FFMPEG_LOGLEVEL"
FFMPEG_QUIET = "-8"  # AV_LOG_QUIET
WINDOW = "rtmw-edge predict (q or Esc to stop)"
STOP_KEYS = (ord("q"), 27)


@dataclass(frozen=True)
class StreamOptions:
    """How videos and cameras are run: the detector every `det_every` frames, ids, smoothing, a live window."""

    det_every: int = 1
    track: bool = False
    smooth: bool = False
    show: bool = False

    def __post_init__(self) -> None:
        if self.det_every < 1:
            raise RtmwEdgeError(f"--det-every must be at least 1 (the detector on every frame), got {self.det_every}")


def quiet_ffmpeg() -> None:
    """Silence FFmpeg's own notes on damaged files ('moov atom not found'), which its C code prints on stderr
    around our one-line error. For command-line processes; OpenCV reads it when it opens its first video."""
    os.environ.setdefault(FFMPEG_LOGLEVEL_ENV, FFMPEG_QUIET)


def stream_outputs(source: Path | int, out_dir: Path) -> list[Path]:
    """The files `predict_stream` writes: the annotated video and the frames' JSON lines."""
    stem = f"camera{source}" if isinstance(source, int) else source.stem
    return [out_dir / f"{stem}_pose.mp4", out_dir / f"{stem}_frames.jsonl"]


def check_display() -> None:
    """Fail before any work when --show cannot open a window: no display, or an OpenCV built without windows."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RtmwEdgeError("--show needs a display, and there is none here (DISPLAY and WAYLAND_DISPLAY are unset)")
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        cv2.destroyWindow(WINDOW)
    except cv2.error as exc:
        raise RtmwEdgeError("--show: this OpenCV cannot open windows (opencv-python-headless?): install "
                            "opencv-python for a live view") from exc


def predict_stream(predictor: Predictor, source: Path | int, out_dir: Path, outputs: Outputs, summary: Summary,
                   kpt_threshold: float, progress: bool, options: StreamOptions = StreamOptions()) -> bool:
    """Every frame of a video file, or of a camera until it stops or Ctrl-C; False when a stop cut the run short
    (what was done is kept, and written in `summary.stopped`)."""
    live = isinstance(source, int)
    video, frames_file = stream_outputs(source, out_dir)
    stream = PoseStream(predictor, det_every=options.det_every, track=options.track, smooth=options.smooth)
    before = summary.frames
    with FrameReader(source) as reader, _stop_on_ctrl_c(reader) as stop:
        writer = _open_writer(outputs.new_file(video), reader.fps, reader.size)
        try:
            with outputs.new_file(frames_file).open("w", encoding="utf-8") as lines, logging_redirect_tqdm(), \
                    tqdm(total=reader.total, desc="predict", unit="frame", disable=not progress) as bar:
                for frame in reader:
                    persons = stream(frame.image, frame.index)
                    annotated = draw_persons(frame.image, persons, kpt_threshold)
                    writer.write(annotated)
                    lines.write(json.dumps(frame_record(frame, persons)) + "\n")
                    summary.frames += 1
                    summary.persons += len(persons)
                    bar.set_postfix(persons=len(persons), refresh=False)
                    bar.update()
                    if options.show and not _show(annotated):
                        stop.reason = "stopped from the window"
                        reader.stop()
        finally:
            writer.release()
            if options.show:
                cv2.destroyAllWindows()
    read = reader.decoded
    if stop.reason:
        summary.stopped = f"{'camera ' if live else ''}{source} {stop.reason} after {summary.frames - before} frames"
        return live  # a camera has no other end
    if not read:
        raise RtmwEdgeError(f"{source}: no frame could be read")
    total = reader.total
    if not live and total and total - read > max(MISSING_FRAMES_MIN, MISSING_FRAMES_FRACTION * total):
        raise RtmwEdgeError(f"{source}: only {read} of the {total} frames its container reports could be read "
                            "(the file is cut short or damaged)")
    return True


def frame_record(frame: Frame, persons: list[Person]) -> dict:
    """One JSON line: the frame's index and time, and each person's id (null untracked), box and keypoints."""
    return {"frame": frame.index, "time_s": round(frame.time_s, 4), "persons": [
        {"track_id": p.track_id, "box": [round(float(v), 2) for v in p.box], "box_score": round(p.box_score, 4),
         "score": round(p.score, 4), "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in p.keypoints],
         "scores": [round(float(s), 4) for s in p.scores], **fields_3d(p)} for p in persons]}


@dataclass
class _Stop:
    reason: str | None = None


@contextlib.contextmanager
def _stop_on_ctrl_c(reader: FrameReader) -> Iterator[_Stop]:
    """The first Ctrl-C ends the stream after the frame in hand (so its outputs stay whole); a second one
    interrupts at once. Only the main thread can take signals: elsewhere Ctrl-C keeps its usual effect."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def first(signum, frame) -> None:
        if stop.reason:
            raise KeyboardInterrupt
        stop.reason = "stopped by Ctrl-C"
        reader.stop()

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _show(image) -> bool:
    """Draw the frame in the live window; False once q or Esc is pressed or the window is closed."""
    cv2.imshow(WINDOW, image)
    key = cv2.waitKey(1) & 0xFF
    return key not in STOP_KEYS and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) >= 1


def _open_writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, size)
    if not writer.isOpened():
        raise RtmwEdgeError(f"OpenCV cannot write {VIDEO_FOURCC} video to {path.parent} (size {size}, {fps} fps)")
    return writer
