"""Pose frame after frame: a `Predictor` that remembers the last frames, for videos and cameras.

    stream = PoseStream(Predictor(pose, detector=det), det_every=5, track=True, smooth=True)
    for frame in frames:
        for person in stream(frame):          # Person.track_id: the same person keeps the same id
            ...
    stream.reset()                            # a new clip: nobody is carried over

The detector runs on one frame in `det_every`; on the others each person's box is carried from the frame before
(rtmw_edge.video.tracker), which saves the detector's time on those frames. A person who appears between two
detector frames is found at the next one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rtmw_edge.detector import Detector
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.predictor import Person, Predictor
from rtmw_edge.video.smoothing import OneEuroParams
from rtmw_edge.video.tracker import MAX_MISSED, Track, Tracker, carried_box


class PoseStream:
    """Persons of each frame of one clip, with `track_id` when `track` (None for someone found on one detector
    frame so far, see rtmw_edge.video.tracker), keypoints One-Euro filtered when `smooth`.

    `detector` replaces the predictor's own (without either, each frame is one person filling it); `index`
    given to a call is the frame's number in the clip (a camera that drops frames), else calls are counted.
    """

    def __init__(self, predictor: Predictor, *, det_every: int = 1, track: bool = False, smooth: bool = False,
                 smoothing: OneEuroParams | None = None, detector: Detector | None = None,
                 max_missed: int = MAX_MISSED) -> None:
        if not isinstance(det_every, int) or isinstance(det_every, bool) or det_every < 1:
            raise RtmwEdgeError(f"det_every must be a whole number of frames, at least 1, got {det_every!r}")
        self.predictor = predictor
        self.detector = detector if detector is not None else predictor.detector
        self.det_every = det_every
        self.track = track
        self.smooth = smooth
        # a track missed on one detector frame must live until the next one
        self.tracker = Tracker(max(max_missed, det_every), (smoothing or OneEuroParams()) if smooth else None)
        self.detections = 0  # detector runs since the last reset, for reports
        self._index = -1
        self._last_detection: int | None = None

    def reset(self) -> None:
        """Start a new clip: no track, no filter state, the detector runs on the next frame."""
        self.tracker.reset()
        self.detections = 0
        self._index = -1
        self._last_detection = None

    def __call__(self, image_bgr: np.ndarray, index: int | None = None) -> list[Person]:
        index = self._index + 1 if index is None else int(index)
        if index <= self._index:
            raise RtmwEdgeError(f"frame {index} does not come after frame {self._index}: call reset() to start a "
                                "new clip")
        last, self._index = self._index, index
        carried = self.tracker.followed(index, last)
        due = self._last_detection is None or index - self._last_detection >= self.det_every or not carried
        tracks = self._detect(image_bgr, index) if due else self._carry(image_bgr, carried, index)
        return [self._output(track, index) for track in tracks]

    def _detect(self, image: np.ndarray, index: int) -> list[Track]:
        boxes = self.detector.detect(image) if self.detector is not None else None
        persons = self.predictor.predict(image, boxes)
        self.detections += 1
        self._last_detection = index
        return self.tracker.match(persons, index)

    def _carry(self, image: np.ndarray, tracks: list[Track], index: int) -> list[Track]:
        """Pose in the boxes carried from the frame before; a box that left the image ends its track's run."""
        height, width = image.shape[:2]
        boxes = np.stack([carried_box(t) for t in tracks]) if tracks else np.zeros((0, 4), np.float32)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
        keep = np.isfinite(boxes).all(1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        tracks = [t for t, k in zip(tracks, keep, strict=True) if k]
        if not tracks:
            return []
        scores = np.array([[t.person.box_score] for t in tracks], np.float32)
        persons = self.predictor.predict(image, np.hstack([boxes[keep], scores]))
        for track, person in zip(tracks, persons, strict=True):
            self.tracker.follow(track, person, index)
        return tracks

    def _output(self, track: Track, index: int) -> Person:
        person = track.person
        changes: dict[str, object] = {}
        if self.track:
            changes["track_id"] = track.track_id
        if track.smoother is not None:
            changes["keypoints"] = track.smoother(person.keypoints, person.scores, index)
        return dataclasses.replace(person, **changes) if changes else person
