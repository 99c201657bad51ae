"""Scenes for calibrating a person detector, composed from photos of people.

A detector is calibrated on scenes: several people at several sizes and places. The shipped photos are portraits
that fill the frame, so calibrating on them alone sets ranges for one large person in the middle. Each scene
here is a background cut from one photo (a small region scaled up: real textures) with PEOPLE people pasted on
it, each a whole photo scaled to HEIGHTS of the scene's height, anywhere in it (partly outside too), flipped
half of the time, its border blended into the background. Everything is drawn from the seed, so the same
photos give the same scenes.
"""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np

from rtmw_edge.quantization.calibration_sources import Frame, Source

SCENES_VERSION = 2  # bump whenever scenes are composed differently: cached calibration sets then miss
WIDTH = 640
HEIGHTS_OF_SCENE = (360, 640)  # the scene's height in pixels, drawn per scene
PEOPLE = (1, 4)  # people per scene, both ends included
HEIGHTS = (0.15, 0.9)  # a person's height over the scene's
BACKGROUND = (0.2, 0.5)  # the side of the background region over the photo's
FEATHER = 0.1  # the pasted photo's border blends into the background over this fraction of its short side


def composed(src: Source, count: int, seed: int) -> Source:
    """`count` scenes made of the frames of `src` (decoded when a scene is made)."""
    draws = np.random.default_rng(seed).random((count, 4 + 5 * PEOPLE[1]))
    frames = [Frame(f"scene{k}", partial(_scene, src.frames, draws[k])) for k in range(count)]
    label = f"{count} scenes composed from {src.label}"
    return Source(label, frames, src.files, src.not_images)


def _scene(frames: list[Frame], draws: np.ndarray) -> np.ndarray | None:
    height = int(HEIGHTS_OF_SCENE[0] + draws[0] * (HEIGHTS_OF_SCENE[1] - HEIGHTS_OF_SCENE[0]))
    background = _photo(frames, draws[1])
    if background is None:
        return None
    scene = _background(background, draws[2], (height, WIDTH))
    people = PEOPLE[0] + int(draws[3] * (PEOPLE[1] - PEOPLE[0] + 1) * 0.999)
    for which, size, x, y, flip in draws[4:4 + 5 * people].reshape(-1, 5):
        photo = _photo(frames, which)
        if photo is None:
            return None
        _paste(scene, cv2.flip(photo, 1) if flip < 0.5 else photo, size, x, y)
    return scene


def _photo(frames: list[Frame], draw: float) -> np.ndarray | None:
    return frames[int(draw * len(frames) * 0.999)].load()


def _background(photo: np.ndarray, draw: float, hw: tuple[int, int]) -> np.ndarray:
    """A region of `photo` (its top-left corner, of BACKGROUND of its side) scaled up to the scene."""
    side = BACKGROUND[0] + draw * (BACKGROUND[1] - BACKGROUND[0])
    region = photo[: max(1, int(photo.shape[0] * side)), : max(1, int(photo.shape[1] * side))]
    return cv2.resize(region, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)


def _paste(scene: np.ndarray, photo: np.ndarray, size: float, x: float, y: float) -> None:
    """`photo` scaled to a HEIGHTS fraction of the scene, its centre at (x, y) of the scene; clipped."""
    height = max(8, int(scene.shape[0] * (HEIGHTS[0] + size * (HEIGHTS[1] - HEIGHTS[0]))))
    width = max(8, int(photo.shape[1] * height / photo.shape[0]))
    person = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    left, top = int(x * scene.shape[1]) - width // 2, int(y * scene.shape[0]) - height // 2
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + width, scene.shape[1]), min(top + height, scene.shape[0])
    if x1 > x0 and y1 > y0:
        alpha = _feather(height, width)[y0 - top:y1 - top, x0 - left:x1 - left, None]
        under = scene[y0:y1, x0:x1].astype(np.float32)
        over = person[y0 - top:y1 - top, x0 - left:x1 - left].astype(np.float32)
        scene[y0:y1, x0:x1] = np.round(under + alpha * (over - under)).astype(np.uint8)


def _feather(height: int, width: int) -> np.ndarray:
    """Opacity that rises from the photo's border over FEATHER of its short side: no hard rectangle edge, which
    no real scene has and which would set the detector's first ranges."""
    ramp = max(1.0, FEATHER * min(height, width))
    rows = np.minimum(np.arange(height) + 1, np.arange(height)[::-1] + 1) / ramp
    cols = np.minimum(np.arange(width) + 1, np.arange(width)[::-1] + 1) / ramp
    return np.clip(np.minimum(rows[:, None], cols[None]), 0.0, 1.0).astype(np.float32)
