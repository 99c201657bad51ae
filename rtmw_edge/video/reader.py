"""Frames of a video file or a camera, decoded on a thread of their own while the caller runs the networks.

OpenCV releases the interpreter lock while it decodes, so decoding the next frame overlaps inference on this
one. A file is read whole, frame after frame (the reader waits when the caller is behind); a camera keeps only
the newest frames (the oldest is dropped when the caller is behind), so a live view shows the present, and the
frame numbers say which were dropped.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rtmw_edge.errors import RtmwEdgeError

FALLBACK_FPS = 30.0  # cameras and some containers report no frame rate
QUEUE_FRAMES = 4  # decoded frames waiting for the caller
_POLL_S = 0.1  # how often a waiting side looks whether the other has stopped
JOIN_S = 5.0  # how long closing waits for the decoding thread to end


@dataclass(frozen=True)
class Frame:
    index: int  # in the source: a camera's dropped frames leave gaps
    time_s: float  # a file's presentation time (index / fps); a camera's seconds since its first frame
    image: np.ndarray  # BGR


class FrameReader:
    """Iterate over `Frame`s of `source` (a video path or a camera index); a context manager that stops the thread.

    Opening fails at once, in one line, for a file or a camera that cannot be opened.
    """

    def __init__(self, source: str | Path | int, queue_frames: int = QUEUE_FRAMES) -> None:
        self.live = isinstance(source, int)
        self.source = source
        with _opencv_quiet():  # OpenCV's own notes on a camera that is not there would add lines to ours
            self._capture = cv2.VideoCapture(source if self.live else str(source))
        if not self._capture.isOpened():
            self._capture.release()
            raise RtmwEdgeError(f"cannot open {'camera ' if self.live else ''}{source} as a video source")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or FALLBACK_FPS
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.total: int | None = count if count > 0 and not self.live else None  # cameras report -1
        self.size = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.decoded = 0  # frames decoded so far (a file's count against `total` shows a truncated file)
        self._frames: queue.Queue[Frame | None] = queue.Queue(maxsize=queue_frames)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"decode {source}", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[Frame]:
        while not self._stop.is_set():
            try:
                frame = self._frames.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if frame is None:
                break
            yield frame
        if self._error is not None:
            raise RtmwEdgeError(f"decoding {self.source} failed: {self._error}") from self._error

    def stop(self) -> None:
        """Ask the iteration to end after the frame in hand (safe from a signal handler)."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=JOIN_S)
        if not self._thread.is_alive():  # a camera stuck in read() keeps its handle: releasing it there would crash
            self._capture.release()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        start = None
        try:
            while not self._stop.is_set():
                ok, image = self._capture.read()
                if not ok:
                    break
                start = time.perf_counter() if start is None else start
                time_s = time.perf_counter() - start if self.live else self.decoded / self.fps
                self._put(Frame(self.decoded, time_s, image))
                self.decoded += 1
        except Exception as exc:  # handed to the caller's thread, which raises it in one line
            self._error = exc
        self._put(None)

    def _put(self, item: Frame | None) -> None:
        """Queue a frame (None: the end); a camera's oldest waiting frame makes room, a file waits for room."""
        drop_oldest = self.live and item is not None
        while not self._stop.is_set():
            try:
                if drop_oldest:
                    self._frames.put_nowait(item)
                else:
                    self._frames.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                if drop_oldest:
                    with contextlib.suppress(queue.Empty):
                        self._frames.get_nowait()


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)
