"""Whole-body poses from names in two lines, the objects `rtmw-edge predict` itself uses:

    pose = rtmw_edge.Wholebody("rtmw-m", backend="openvino", precision="int8")   # made once, then cached
    persons = pose(frame_bgr)                                                    # [Person], 133 keypoints each

For a video or a camera, `Wholebody(..., det_every=5, track=True, smooth=True)` called frame after frame runs
the detector on one frame in five and gives each `Person` a `track_id` (rtmw_edge.video); `reset()` starts a
new clip.

The model and the detector may be registered names (fetched and converted on first use, see `resolve`) or
artifacts; `detector="auto"` takes the device profile's detector, `"none"` the whole image as one person.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtmw_edge.artifact import load_artifact
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.model.registry import find_spec
from rtmw_edge.predictor import Person, Predictor, describe, flip_test_refused
from rtmw_edge.profiles import Profile
from rtmw_edge.resolve import AUTO, detector_artifact, machine_profile, pose_artifact
from rtmw_edge.video.stream import PoseStream


@dataclass(frozen=True)
class PredictorSetup:
    """What makes a Predictor, names already resolved to artifacts: plain data, so a Ray actor can make its own."""

    artifact: Path
    detector: Path | None
    threads: int | None
    device: str | None
    flip_test: bool = False
    score_threshold: float = 0.3
    camera: tuple[float, float, float, float] | None = None  # fx, fy, cx, cy of a 3D model's camera

    @property
    def described(self) -> tuple[str, bool]:
        """(`Predictor.info`, whether the model is trained), read from the artifacts without loading a network."""
        meta = load_artifact(self.artifact, verify=False).meta
        detector = Path(self.detector).name if self.detector is not None else None
        return describe(meta.label, self.flip_test, detector), bool(meta.trained)

    def open(self) -> Predictor:
        return Predictor(self.artifact, detector=self.detector, threads=self.threads, device=self.device,
                         flip_test=self.flip_test, score_threshold=self.score_threshold, camera=self.camera)


def predictor_setup(model: str | Path, backend: str | None, precision: str, detector: str | Path | None,
                    profile: Profile, threads: int | None = None, device: str | None = None,
                    flip_test: bool = False, score_threshold: float = 0.3, progress: bool = True,
                    camera: tuple[float, float, float, float] | None = None) -> PredictorSetup:
    """Names to artifacts (made on first use), and the profile's threads and device for the artifact's backend."""
    pose = pose_artifact(model, backend, precision, profile, progress=progress)
    backend = load_artifact(pose, verify=False).meta.backend
    options = profile.runner_options(backend, threads)
    return PredictorSetup(pose, detector_artifact(detector, backend, profile, progress=progress),
                          options["threads"], device or options["device"], flip_test, score_threshold, camera)


class Wholebody:
    """A pose model and a person detector by name: `pose(frame)` gives the `Person`s in a BGR frame.

    `backend` defaults to the device profile's first installed backend, `profile` to this machine's (see
    `profiles.default_profile_name`); threads and device default to the profile's. Options after the detector are
    keyword-only, so new ones can join without breaking a call.
    """

    def __init__(self, model: str | Path = "rtmw-m", backend: str | None = None, precision: str = "fp32",
                 detector: str | Path | None = AUTO, *, profile: str | Path | Profile | None = None,
                 threads: int | None = None, device: str | None = None, flip_test: bool = False,
                 score_threshold: float = 0.3, det_every: int = 1, track: bool = False, smooth: bool = False,
                 progress: bool = True, camera: tuple[float, float, float, float] | None = None) -> None:
        spec = find_spec(str(model))
        if flip_test and spec is not None and spec.depth is not None:  # before minutes of export
            raise flip_test_refused(spec.name)
        self.profile = machine_profile(profile)
        self.predictor = predictor_setup(model, backend, precision, detector, self.profile, threads, device,
                                         flip_test, score_threshold, progress, camera).open()
        # frame after frame only when asked: a plain call stays one independent image
        self.stream = (PoseStream(self.predictor, det_every=det_every, track=track, smooth=smooth)
                       if (det_every, track, smooth) != (1, False, False) else None)

    def __call__(self, frame_bgr: np.ndarray, boxes: np.ndarray | None = None) -> list[Person]:
        """The persons in `frame_bgr` (uint8 BGR, as OpenCV reads it), in the order of `boxes` or the detector's;
        with det_every, track or smooth, the next frame of the clip (then `boxes` is not taken)."""
        if self.stream is None:
            return self.predictor.predict(frame_bgr, boxes)
        if boxes is not None:
            raise RtmwEdgeError("boxes cannot be given frame by frame: with det_every, track or smooth the "
                                "detector and the tracker find them")
        return self.stream(frame_bgr)

    def reset(self) -> None:
        """A new clip: nobody is carried over (ids keep counting up, never reused)."""
        if self.stream is not None:
            self.stream.reset()

    @property
    def info(self) -> str:
        return self.predictor.info
