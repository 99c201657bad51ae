"""Whole-body poses from names in two lines, the objects `rtmw-edge predict` itself uses:

    pose = rtmw_edge.Wholebody("rtmw-m", backend="openvino", precision="int8")   # made once, then cached
    persons = pose(frame_bgr)                                                    # [Person], 133 keypoints each

The model and the detector may be registered names (fetched and converted on first use, see `resolve`) or
artifacts; `detector="auto"` takes the device profile's detector, `"none"` the whole image as one person.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtmw_edge.artifact import load_artifact
from rtmw_edge.predictor import Person, Predictor
from rtmw_edge.profiles import Profile
from rtmw_edge.resolve import AUTO, detector_artifact, machine_profile, pose_artifact


class Wholebody:
    """A pose model and a person detector by name: `pose(frame)` gives the `Person`s in a BGR frame.

    `backend` defaults to the device profile's first installed backend, `profile` to this machine's (see
    `profiles.default_profile_name`); threads and device default to the profile's. Options after the detector are
    keyword-only, so new ones can join without breaking a call.
    """

    def __init__(self, model: str | Path = "rtmw-m", backend: str | None = None, precision: str = "fp32",
                 detector: str | Path | None = AUTO, *, profile: str | Path | Profile | None = None,
                 threads: int | None = None, device: str | None = None, flip_test: bool = False,
                 score_threshold: float = 0.3, progress: bool = True) -> None:
        self.profile = machine_profile(profile)
        pose = pose_artifact(model, backend, precision, self.profile, progress=progress)
        backend = load_artifact(pose, verify=False).meta.backend
        options = self.profile.runner_options(backend, threads)
        self.predictor = Predictor(
            pose, detector=detector_artifact(detector, backend, self.profile, progress=progress),
            threads=options["threads"], device=device or options["device"], flip_test=flip_test,
            score_threshold=score_threshold)

    def __call__(self, frame_bgr: np.ndarray, boxes: np.ndarray | None = None) -> list[Person]:
        """The persons in `frame_bgr` (uint8 BGR, as OpenCV reads it), in the order of `boxes` or the detector's."""
        return self.predictor.predict(frame_bgr, boxes)

    @property
    def info(self) -> str:
        return self.predictor.info
