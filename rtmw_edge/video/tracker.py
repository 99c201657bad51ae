"""Who is who from frame to frame: stable ids for the people of a video, and their boxes between detections.

On a frame where the detector ran, each detected person continues the track it resembles most: their boxes
overlap (IoU) or their body keypoints agree (OKS, COCO's keypoint similarity), whichever says more, matched
greedily best pair first. A detection that continues no track starts a new one, which gets the next id once the
detector has found it twice in a row (`CONFIRM_HITS`; at the start of a clip at once): a box the detector gives
on one frame only (a second box on part of someone) uses up no id. Ids are never reused. A track unmatched for
more than `max_missed` frames is ended, so someone who leaves and comes back later gets a new id, while a person
the detector misses for a few frames keeps theirs.

On the frames in between, each track's box follows its keypoints: it moves by their median motion and scales by
the change of their spread between the last two frames. It keeps the detector's framing (the crops the pose
model was trained on) instead of being redrawn around keypoints, and it cannot drift when the keypoints are
meaningless (untrained weights): those move with their crop, so the box stays where the detector put it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from rtmw_edge.detector import box_iou
from rtmw_edge.keypoints import PARTS, SIGMAS
from rtmw_edge.predictor import Person
from rtmw_edge.video.smoothing import OneEuro, OneEuroParams

MATCH_THRESHOLD = 0.3  # IoU or OKS at least this to continue a track
MAX_MISSED = 10  # frames a track may go unmatched and keep its id
CONFIRM_HITS = 2  # detector runs in a row that find a new person before it gets an id
KEYPOINT_THRESHOLD = 0.3  # keypoints scoring above this move a box between detections and count in OKS
MIN_KEYPOINTS = 3  # fewer confident keypoints than this: the box does not move
MAX_SCALE_STEP = 1.25  # a box grows or shrinks by at most this factor from one frame to the next
_BODY = slice(*PARTS["body"])  # OKS on the body: the face's and hands' tiny sigmas would make a mover a stranger


@dataclass
class Track:
    """One person followed through a video: its latest box and keypoints, and the frame they are from."""

    track_id: int | None  # None until confirmed
    person: Person  # latest, raw (unsmoothed) keypoints
    index: int  # frame of `person`
    hits: int = 1  # detector runs that found it
    previous: Person | None = None  # the frame before, when it was followed there (not detected): for motion
    smoother: OneEuro | None = field(default=None, repr=False)


class Tracker:
    """Assigns tracks to the persons of each frame; `max_missed` frames unmatched end a track."""

    def __init__(self, max_missed: int = MAX_MISSED, smoothing: OneEuroParams | None = None) -> None:
        self.max_missed = max_missed
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def reset(self) -> None:
        """Forget every track (a new clip); ids keep counting, so none is ever reused."""
        self.tracks = []

    def match(self, persons: list[Person], index: int) -> list[Track]:
        """The track of each person detected at frame `index` (continued or new), in the persons' order."""
        self._end_lost(index)
        start = not self.tracks  # nobody followed: whoever is found now is confirmed at once
        pairs = _greedy_pairs(similarity([t.person for t in self.tracks], persons))
        found: dict[int, Track] = {}
        for row, col in pairs:
            track = self.tracks[row]
            track.person, track.index, track.previous, track.hits = persons[col], index, None, track.hits + 1
            if track.track_id is None and track.hits >= CONFIRM_HITS:
                track.track_id = next(self._ids)
            found[col] = track
        matched = {id(t) for t in found.values()}
        self.tracks = [t for t in self.tracks if t.track_id is not None or id(t) in matched]  # unconfirmed: once
        for col, person in enumerate(persons):
            if col not in found:
                found[col] = Track(next(self._ids) if start else None, person, index, smoother=self._smoother())
                self.tracks.append(found[col])
        return [found[col] for col in range(len(persons))]

    def followed(self, index: int, last: int) -> list[Track]:
        """Tracks seen on frame `last`, the one before `index` (frames may have been dropped in between): those
        whose boxes can be carried into frame `index`."""
        self._end_lost(index)
        return [t for t in self.tracks if t.index == last]

    def follow(self, track: Track, person: Person, index: int) -> None:
        """Record the person found at frame `index` in the box carried from the track's last frame."""
        track.previous, track.person, track.index = track.person, person, index

    def _end_lost(self, index: int) -> None:
        """End the tracks unseen on more than `max_missed` frames before `index`."""
        self.tracks = [t for t in self.tracks if index - t.index - 1 <= self.max_missed]

    def _smoother(self) -> OneEuro | None:
        return OneEuro(self.smoothing) if self.smoothing is not None else None


def carried_box(track: Track) -> np.ndarray:
    """The box for the frame after the track's last: its last box, moved and scaled as its keypoints moved."""
    box = track.person.box.astype(np.float64)
    if track.previous is None:
        return box.astype(np.float32)
    now, before = track.person, track.previous
    both = (now.scores > KEYPOINT_THRESHOLD) & (before.scores > KEYPOINT_THRESHOLD)
    if both.sum() < MIN_KEYPOINTS:
        return box.astype(np.float32)
    a, b = before.keypoints[both].astype(np.float64), now.keypoints[both].astype(np.float64)
    shift = np.median(b - a, axis=0)
    spread_a, spread_b = np.ptp(a, axis=0), np.ptp(b, axis=0)
    scale = np.where(spread_a > 1.0, spread_b / np.maximum(spread_a, 1.0), 1.0)
    scale = np.clip(scale, 1.0 / MAX_SCALE_STEP, MAX_SCALE_STEP)
    center = (box[:2] + box[2:]) / 2.0 + shift
    half = (box[2:] - box[:2]) / 2.0 * scale
    return np.concatenate([center - half, center + half]).astype(np.float32)


def similarity(tracked: list[Person], found: list[Person]) -> np.ndarray:
    """[len(tracked), len(found)]: the larger of box IoU and body-keypoint OKS for each pair."""
    if not tracked or not found:
        return np.zeros((len(tracked), len(found)))
    boxes_a = np.stack([p.box for p in tracked]).astype(np.float64)
    boxes_b = np.stack([p.box for p in found]).astype(np.float64)
    return np.maximum(box_iou(boxes_a, boxes_b), _oks(tracked, found))


def _oks(tracked: list[Person], found: list[Person]) -> np.ndarray:
    """COCO's object keypoint similarity of each pair on the body keypoints the tracked person shows, the
    tracked person's box area standing for its size."""
    a = np.stack([p.keypoints[_BODY] for p in tracked]).astype(np.float64)  # [T,17,2]
    b = np.stack([p.keypoints[_BODY] for p in found]).astype(np.float64)  # [F,17,2]
    shown = np.stack([p.scores[_BODY] > KEYPOINT_THRESHOLD for p in tracked])  # [T,17]
    area = np.array([max(float(np.prod(p.box[2:] - p.box[:2])), 1.0) for p in tracked])  # [T]
    squared = ((a[:, None] - b[None]) ** 2).sum(-1)  # [T,F,17]
    k2 = (2.0 * SIGMAS[_BODY]) ** 2
    per_point = np.exp(-squared / (2.0 * area[:, None, None] * k2))
    count = shown.sum(1)[:, None]
    return np.where(count > 0, (per_point * shown[:, None]).sum(-1) / np.maximum(count, 1), 0.0)


def _greedy_pairs(scores: np.ndarray) -> list[tuple[int, int]]:
    """(row, column) pairs, best score first, each row and column used once, none below MATCH_THRESHOLD."""
    pairs: list[tuple[int, int]] = []
    if not scores.size:
        return pairs
    rows, cols = np.unravel_index(np.argsort(-scores, axis=None, kind="stable"), scores.shape)
    used_rows, used_cols = set(), set()
    for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
        if scores[row, col] < MATCH_THRESHOLD:
            break
        if row not in used_rows and col not in used_cols:
            pairs.append((row, col))
            used_rows.add(row)
            used_cols.add(col)
    return pairs
