"""Overlay persons on an image: box, skeleton and keypoints coloured by body part, unsure points left out; a tracked
person's box and id in a colour of its own. A 3D model's persons also get a 3D view: the camera-space skeleton from
the front and from the side (matplotlib, the `report` extra)."""

from __future__ import annotations

import io
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

# the 3D view is drawn on white: the face, white in overlays, is grey there
VIEW_3D_COLORS = {part: "#808080" if bgr == (255, 255, 255) else "#{:02x}{:02x}{:02x}".format(*bgr[::-1])
                  for part, bgr in PART_COLORS.items()}
VIEW_3D_ANGLES = (("front", 10.0, -90.0), ("side", 10.0, 0.0))  # (title, elevation, azimuth) in degrees

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


def view_3d_png(persons: Sequence[Person], kpt_threshold: float = 0.3) -> bytes:
    """A PNG of the persons' camera-space skeletons from two angles (metres; up is up, depth away from the camera)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5), layout="constrained")
    FigureCanvasAgg(fig)
    for index, (title, elevation, azimuth) in enumerate(VIEW_3D_ANGLES, start=1):
        ax = fig.add_subplot(1, 2, index, projection="3d")
        for person in persons:
            if person.keypoints_3d is not None:
                _draw_skeleton_3d(ax, person, kpt_threshold)
        ax.view_init(elev=elevation, azim=azimuth)
        ax.set_title(title)
        ax.set_xlabel("X (m)")
        ax.set_ylabel("Z, depth (m)")
        ax.set_zlabel("-Y, up (m)")
        ax.set_aspect("equal", adjustable="datalim")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def _draw_skeleton_3d(ax, person: Person, kpt_threshold: float) -> None:
    x, y, z = person.keypoints_3d[:, 0], person.keypoints_3d[:, 2], -person.keypoints_3d[:, 1]
    shown = person.scores > kpt_threshold
    for part, links in SKELETON.items():
        for a, b in links:
            if shown[a] and shown[b]:
                ax.plot([x[a], x[b]], [y[a], y[b]], [z[a], z[b]], color=VIEW_3D_COLORS[part], linewidth=1.5)
    for part, (lo, hi) in PARTS.items():
        keep = shown[lo:hi]
        ax.scatter(x[lo:hi][keep], y[lo:hi][keep], z[lo:hi][keep], color=VIEW_3D_COLORS[part], s=4)
