"""Video and camera: the detector every N frames, stable ids per person, One-Euro smoothing, threaded decoding.

`PoseStream` wraps a `Predictor` for a clip (called frame after frame, `reset()` between clips); `FrameReader`
decodes a file or a camera on its own thread. Numpy only: no tracker or filter library.
"""

from rtmw_edge.video.reader import Frame, FrameReader
from rtmw_edge.video.smoothing import OneEuro, OneEuroParams
from rtmw_edge.video.stream import PoseStream

__all__ = ["Frame", "FrameReader", "OneEuro", "OneEuroParams", "PoseStream"]
