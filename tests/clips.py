"""Video clips made from one ../shared photo, for the video tests and benchmarks/video_det_every.py.

The photo (five skiers, all of whom the trained RTMDet-nano finds) is put on a grey canvas, and a window that
pans and zooms over it makes the frames: the people move across the frame and grow and shrink, and all five stay
wholly in view (nobody leaves, so a tracker that keeps ids gives exactly five).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FIVE_PEOPLE = "000000197388.jpg"  # coco-wholebody-mini: five skiers
PEOPLE = 5
BORDER = (40, 60)  # grey around the photo (rows, columns): room for the window to move
GREY = (114, 114, 114)
MARGIN = 10  # pixels the window keeps between the people and its edges
ZOOM = 1.25  # the window's tightest zoom
CLIP_WIDTH = 480


@dataclass(frozen=True)
class Clip:
    frames: list[np.ndarray]  # BGR
    boxes: np.ndarray  # [T,K,4] where each of the photo's K people is in each frame, x1 y1 x2 y2


def panning_zooming_clip(photo: np.ndarray, people: np.ndarray, frames: int = 60) -> Clip:
    """`frames` frames CLIP_WIDTH wide of a window moving over `photo`; `people` [K,4] are the photo's person
    boxes, which every window holds whole."""
    canvas = cv2.copyMakeBorder(photo, *BORDER[:1] * 2, *BORDER[1:] * 2, cv2.BORDER_CONSTANT, value=GREY)
    height, width = canvas.shape[:2]
    offset = np.array(BORDER[::-1], np.float64)  # photo -> canvas, x and y
    lo = people[:, :2].min(0) + offset - MARGIN  # the window must start before this
    hi = people[:, 2:4].max(0) + offset + MARGIN  # and end after this
    images, boxes = [], []
    for t in range(frames):
        zoom = 1.0 + (ZOOM - 1.0) * (1.0 - np.cos(2 * np.pi * t / frames)) / 2.0
        size = np.array([width, height], np.float64) / zoom
        low, high = hi - size / 2.0, lo + size / 2.0  # the window's centre may go from low to high
        swing = np.array([np.sin(2 * np.pi * t / 40), np.cos(2 * np.pi * t / 40)])
        corner = (low + high) / 2.0 + 0.9 * np.maximum(high - low, 0) / 2.0 * swing - size / 2.0
        scale = CLIP_WIDTH / size[0]
        warp = np.array([[scale, 0, -corner[0] * scale], [0, scale, -corner[1] * scale]], np.float64)
        images.append(cv2.warpAffine(canvas, warp, (CLIP_WIDTH, round(size[1] * scale)), flags=cv2.INTER_LINEAR,
                                     borderValue=GREY))
        boxes.append((people[:, :4].reshape(-1, 2, 2) + offset - corner).reshape(-1, 4) * scale)
    return Clip(images, np.stack(boxes))


def still_clip(photo: np.ndarray, frames: int = 30, noise: float = 3.0, seed: int = 0) -> list[np.ndarray]:
    """One frame repeated with small Gaussian noise, as a camera on a tripod gives: nothing moves but the noise."""
    rng = np.random.default_rng(seed)
    base = photo.astype(np.float32)
    return [np.clip(base + rng.normal(0.0, noise, base.shape), 0, 255).astype(np.uint8) for _ in range(frames)]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 15.0, fourcc: str = "mp4v") -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
