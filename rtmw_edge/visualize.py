"""Overlay persons on an image: box, skeleton and keypoints coloured by body part, unsure points left out; a tracked
person's box and id in a colour of its own."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from rtmw_edge.detector import as_bgr
from rtmw_edge.keypoints import PARTS, SKELETON
from rtmw_edge.predictor import Person

# BGR colour per body part (links take the colour of the part they belong to)
PART_COLORS: dict[str, tuple[int, int, int]] = {
    "body": (255, 128, 0),
    "foot": (0, 165, 255),
    "face": (255, 255, 255),
    "left_hand": (0, 255, 0),
    "right_hand": (255, 0, 255),
}
BOX_COLOR = (0, 255, 255)
GOLDEN = 0.618033988749895  # consecutive ids get hues far apart
# sizes grow with the image's long side so that overlays stay readable on small and large images alike
RADIUS_PER_PIXEL = 1 / 400
LINE_PER_PIXEL = 1 / 600

_KEYPOINT_COLORS = [PART_COLORS[name] for name, (lo, hi) in PARTS.items() for _ in range(lo, hi)]


def draw_persons(image_bgr: np.ndarray, persons: Sequence[Person], kpt_threshold: float = 0.3) -> np.ndarray:
    """A BGR copy of the image with each person drawn; keypoints scoring <= kpt_threshold and their links hidden."""
    canvas = as_bgr(image_bgr).copy()
    long_side = max(canvas.shape[:2])
    radius = max(2, round(long_side * RADIUS_PER_PIXEL))
    line = max(1, round(long_side * LINE_PER_PIXEL))
    for person in persons:
        _draw_person(canvas, person, kpt_threshold, radius, line)
    return canvas


def track_color(track_id: int) -> tuple[int, int, int]:
    """A bright BGR colour for an id: the same id always gets the same one, neighbours very different ones."""
    hue = round((track_id * GOLDEN) % 1.0 * 179)
    pixel = cv2.cvtColor(np.array([[[hue, 220, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(pixel[0]), int(pixel[1]), int(pixel[2])


def _draw_person(canvas: np.ndarray, person: Person, kpt_threshold: float, radius: int, line: int) -> None:
    x1, y1, x2, y2 = np.rint(person.box).astype(int).tolist()
    color = BOX_COLOR if person.track_id is None else track_color(person.track_id)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), color, line, cv2.LINE_AA)
    if person.track_id is not None:  # the id in black on a tab of its colour, at the box's top left corner
        text, scale = str(person.track_id), 0.4 + 0.2 * line
        (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, line)
        top = max(y1, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + width + 2 * line, top + height + base + line), color, -1)
        cv2.putText(canvas, text, (x1 + line, top + height + line), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    line, cv2.LINE_AA)
    points = [tuple(p) for p in np.rint(person.keypoints).astype(int).tolist()]
    shown = person.scores > kpt_threshold
    for part, links in SKELETON.items():
        for a, b in links:
            if shown[a] and shown[b]:
                cv2.line(canvas, points[a], points[b], PART_COLORS[part], line, cv2.LINE_AA)
    for index in np.flatnonzero(shown):
        cv2.circle(canvas, points[index], radius, _KEYPOINT_COLORS[index], -1, cv2.LINE_AA)
