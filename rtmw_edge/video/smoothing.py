"""The One-Euro filter (Casiez et al., CHI 2012) over a person's keypoints: steady when still, no lag when moving.

Each coordinate is low-pass filtered with a cutoff that rises with its filtered speed, so jitter of a person
standing still is removed while a fast arm is followed. The defaults are mmpose's (`OneEuroFilter`:
min_cutoff 0.004, beta 0.7, derivative cutoff 1.0), with time counted in frames and positions in image pixels,
as mmpose counts them; the parameters mean the same thing here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    """min_cutoff: cutoff (cycles per frame) at rest, lower = steadier; beta: how fast the cutoff rises with
    speed (per pixel per frame), higher = less lag; d_cutoff: cutoff of the speed estimate itself."""

    min_cutoff: float = 0.004
    beta: float = 0.7
    d_cutoff: float = 1.0


def _alpha(cutoff: np.ndarray | float, frames: float) -> np.ndarray:
    """Weight of the new sample in an exponential smoother with this cutoff, `frames` after the last sample."""
    r = 2.0 * np.pi * np.asarray(cutoff, np.float64) * frames
    return r / (r + 1.0)


class OneEuro:
    """Filters one person's [K,2] keypoints frame after frame; a keypoint the model does not see (score <= 0,
    where decoding puts it at -1) passes through untouched and restarts its filter when it is seen again."""

    def __init__(self, params: OneEuroParams = OneEuroParams()) -> None:
        self.params = params
        self._x: np.ndarray | None = None  # [K,2] last filtered positions
        self._dx: np.ndarray | None = None  # [K,2] last filtered speeds, pixels per frame
        self._seen: np.ndarray | None = None  # [K] filter state valid
        self._index = 0

    def __call__(self, keypoints: np.ndarray, scores: np.ndarray, index: int) -> np.ndarray:
        """Filtered copy of `keypoints` at frame `index` (frames may be skipped: the step is their difference)."""
        x = np.asarray(keypoints, np.float64)
        seen = np.asarray(scores) > 0
        if self._x is None or index <= self._index:
            self._start(x, seen, index)
            return np.asarray(keypoints, np.float32).copy()
        frames = float(index - self._index)
        steady = (seen & self._seen)[:, None]  # seen now and last time: filtered; otherwise started afresh
        dx = (x - self._x) / frames
        dx_hat = self._dx + _alpha(self.params.d_cutoff, frames) * (dx - self._dx)
        cutoff = self.params.min_cutoff + self.params.beta * np.abs(dx_hat)
        out = np.where(steady, self._x + _alpha(cutoff, frames) * (x - self._x), x)
        self._x, self._dx, self._seen, self._index = out, np.where(steady, dx_hat, 0.0), seen, index
        return out.astype(np.float32)

    def _start(self, x: np.ndarray, seen: np.ndarray, index: int) -> None:
        self._x, self._dx, self._seen, self._index = x.copy(), np.zeros_like(x), seen.copy(), index
