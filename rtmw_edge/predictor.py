"""One Predictor for every backend: image -> person boxes -> one pose batch -> keypoints in image pixels.

Everything backend-specific (file, blob names, input size, decoding, keypoint layout) comes from the artifact's
sidecar, so the same code runs an ONNX Runtime, OpenVINO or ncnn artifact; nothing here branches on the backend.
A 3D artifact (RTMW3D: a `depth` section in its decoding) also gives each person camera-space keypoints.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtmw_edge import topdown
from rtmw_edge.artifact import Artifact, load_artifact
from rtmw_edge.backends import open_runner
from rtmw_edge.backends.base import PixelRunner, Runner
from rtmw_edge.detector import as_bgr, open_detector
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.keypoints import NUM_KEYPOINTS, PARTS

logger = logging.getLogger(__name__)

# mmpose's 'bbox_keypoint' rescoring: a person's score is its box score times the mean of these keypoint scores
RESCORE_KEYPOINT_THRESHOLD = 0.2

# The sidecar fields whose values the shared pre/post-processing in `topdown` assumes.
EXPECTED_SIDECAR: dict[str, dict[str, object]] = {
    "preprocessing": {"channel_order": "RGB", "mean": list(topdown.MEAN_RGB), "std": list(topdown.STD_RGB),
                      "padding": topdown.PADDING},
    "decoding": {"codec": "simcc"},
    "keypoints": {"name": "coco-wholebody", "num_keypoints": NUM_KEYPOINTS},
}

# why a box is dropped -> test on [K,5] boxes against the image (height, width); all are checked in this order
_BOX_PROBLEMS: dict[str, Callable[[np.ndarray, tuple[int, int]], np.ndarray]] = {
    "not finite": lambda b, hw: ~np.isfinite(b).all(axis=1),
    "zero or negative area": lambda b, hw: (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]),
    "wholly outside the image": lambda b, hw: (b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= hw[1])
    | (b[:, 1] >= hw[0]),
}


@dataclass(frozen=True)
class Person:
    """One person: 133 keypoints in image pixels with their SimCC scores, and the box they were found in.

    `track_id` is set by a tracking `rtmw_edge.video.PoseStream` (the same person keeps it across frames).
    A 3D model adds `keypoints_3d` (camera space, metres: X right, Y down, Z away from the camera) and `depth`
    (each keypoint's depth relative to the root, the mean of the hips, in metres); a 2D model leaves them None.
    """

    keypoints: np.ndarray = field(repr=False)  # [133, 2] float32, x, y
    scores: np.ndarray = field(repr=False)  # [133] float32, raw SimCC confidence (min of the two axis maxima)
    box: np.ndarray  # [4] float32, x1, y1, x2, y2
    box_score: float
    track_id: int | None = None
    keypoints_3d: np.ndarray | None = field(default=None, repr=False)  # [133, 3] float32, metres
    depth: np.ndarray | None = field(default=None, repr=False)  # [133] float32, metres from the root's depth

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints, scores) of one part of keypoints.PARTS."""
        lo, hi = PARTS[name]
        return self.keypoints[lo:hi], self.scores[lo:hi]

    @property
    def body(self) -> tuple[np.ndarray, np.ndarray]:
        return self.part("body")

    @property
    def foot(self) -> tuple[np.ndarray, np.ndarray]:
        return self.part("foot")

    @property
    def face(self) -> tuple[np.ndarray, np.ndarray]:
        return self.part("face")

    @property
    def left_hand(self) -> tuple[np.ndarray, np.ndarray]:
        return self.part("left_hand")

    @property
    def right_hand(self) -> tuple[np.ndarray, np.ndarray]:
        return self.part("right_hand")

    @property
    def score(self) -> float:
        """Ranking score as mmpose's COCO-WholeBody metric computes it, so AP from our results matches theirs."""
        confident = self.scores[self.scores > RESCORE_KEYPOINT_THRESHOLD]
        return float(self.box_score * confident.mean()) if confident.size else 0.0


class BrokenOutputError(RtmwEdgeError):
    """The pose model gave non-finite or all-zero SimCC outputs: a broken (e.g. overflowed INT8) artifact."""


class Predictor:
    """Whole-body pose of every person in a BGR image, from a pose artifact and an optional person detector.

    `detector` is a detector artifact folder or a bare detector model file (RTMDet); without one, each image is
    taken as one person box. `detector_options` go to the detector's runner (e.g. ncnn's input_shape).
    `camera` (fx, fy, cx, cy in pixels) lifts a 3D model's keypoints to camera space; by default the model's
    focal length and the image's centre.
    """

    def __init__(
        self,
        artifact: str | Path,
        detector: str | Path | None = None,
        backend: str | None = None,
        threads: int | None = None,
        device: str | None = None,
        flip_test: bool = False,
        score_threshold: float = 0.3,
        detector_options: dict | None = None,
        runner: Runner | None = None,
        camera: tuple[float, float, float, float] | None = None,
    ) -> None:
        self.artifact = _load(artifact, "pose")
        meta = self.artifact.meta
        _check_sidecar(self.artifact)
        self.depth: dict | None = meta.decoding.get("depth")  # the z codec of a 3D model
        self.camera = _checked_camera(camera, meta.model, self.depth is not None)
        if flip_test and self.depth:
            raise flip_test_refused(meta.model)
        # `runner`: an open network to use instead of the artifact's file (a quantization candidate)
        self.runner = runner or open_runner(self.artifact.main_path, backend or meta.backend, threads=threads,
                                            device=device, **self.artifact.runner_options)
        self.input_hw: tuple[int, int] = (int(meta.input_hw[0]), int(meta.input_hw[1]))
        self.split_ratio = float(meta.decoding["split_ratio"])
        self.flip_indices: list[int] = list(meta.keypoints["flip_indices"])
        self.flip_test = flip_test
        self.detector_name = Path(detector).name if detector is not None else None
        self.detector = open_detector(detector, score_threshold, threads, device, detector_options or {})
        self._warned_no_detector = False

    @property
    def trained(self) -> bool:
        return bool(self.artifact.meta.trained)

    @property
    def info(self) -> str:
        """One line naming the model (marked 'untrained' when it is), the flip test and the detector."""
        return describe(self.artifact.meta.label, self.flip_test, self.detector_name)

    def predict(self, image_bgr: np.ndarray, boxes: np.ndarray | None = None) -> list[Person]:
        """Persons in `image_bgr`, in the order of `boxes` ([K,4] xyxy or [K,5] with score) or of the detector."""
        image = _checked_image(image_bgr)
        boxes = self._usable_boxes(image, boxes)
        if not len(boxes):
            return []
        crops = topdown.crop(image, boxes[:, :4], self.input_hw)
        logits = self.simcc_of(crops)
        keypoints, scores = topdown.decode(logits[0], logits[1], self.split_ratio)
        keypoints = topdown.to_image(keypoints, crops.centers, crops.scales, self.input_hw)
        lifted = self._lift(keypoints, scores, logits[2], image.shape[:2]) if self.depth else [{}] * len(boxes)
        return [Person(k, s, b[:4].copy(), float(b[4]), **extra)
                for k, s, b, extra in zip(keypoints, scores, boxes, lifted, strict=True)]

    def _lift(self, keypoints: np.ndarray, scores: np.ndarray, simcc_z: np.ndarray, image_hw: tuple[int, int]
              ) -> list[dict[str, np.ndarray]]:
        """Per person: keypoints_3d in camera space and the root-relative depth, from the z logits."""
        depth = self.depth
        z = topdown.decode_z(simcc_z, scores, self.split_ratio)
        metres = topdown.depth_metres(z, depth["input_depth"], depth["z_range"])
        camera = self.camera or (*depth["focal"], image_hw[1] / 2, image_hw[0] / 2)
        points = topdown.camera_space(keypoints, metres, depth["root_z"], camera)
        return [{"keypoints_3d": p.astype(np.float32), "depth": m.astype(np.float32)}
                for p, m in zip(points, metres, strict=True)]

    def simcc(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """SimCC logits of a normalised crop batch (x, y; and z for a 3D model), flip-averaged when asked; the
        mirrored views ride in the same batch."""
        return self._logits(batch, self.runner.run, topdown.flip_batch)

    def simcc_of(self, crops: topdown.Crops) -> tuple[np.ndarray, ...]:
        """`simcc` of warped crops: as pixels where the runner normalises them itself (the same numbers)."""
        if isinstance(self.runner, PixelRunner):
            run = functools.partial(self.runner.run_pixels, mean_rgb=topdown.MEAN_RGB, std_rgb=topdown.STD_RGB)
            return self._logits(crops.pixels, run, topdown.flip_pixels)
        return self.simcc(crops.batch)

    def _logits(self, batch: np.ndarray, run: Callable[[np.ndarray], list[np.ndarray]],
                flip: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, ...]:
        count = len(batch)
        if self.flip_test:
            batch = np.concatenate([batch, flip(batch)])
        outputs = tuple(run(batch)[:3 if self.depth else 2])
        simcc_x, simcc_y = outputs[:2]
        broken = np.logical_or.reduce([_broken_rows(o) for o in outputs])
        broken = broken[:count] | broken[count:] if self.flip_test else broken
        if broken.any():
            raise BrokenOutputError(
                f"the pose model returned non-finite/all-zero outputs for {int(broken.sum())} of {count} persons: "
                f"the artifact is broken (INT8 overflow?): {self.artifact.main_path}")
        if self.flip_test:
            return topdown.merge_flip(simcc_x[:count], simcc_y[:count], simcc_x[count:], simcc_y[count:],
                                      self.flip_indices)
        return outputs

    def _usable_boxes(self, image: np.ndarray, boxes: np.ndarray | None) -> np.ndarray:
        """[K,5] boxes with scores: the caller's, else the detector's, else the whole image; bad ones dropped."""
        if boxes is not None:
            return _drop_bad_boxes(_as_scored_boxes(boxes), image.shape[:2])
        if self.detector is not None:  # its boxes are clipped to the image: one in the padding would have no area
            return _drop_bad_boxes(self.detector.detect(image), image.shape[:2])
        if not self._warned_no_detector:
            logger.warning("no person detector given: each image is taken as one person filling the whole image "
                           "(pass a detector for images with several or small people)")
            self._warned_no_detector = True
        height, width = image.shape[:2]
        return np.array([[0, 0, width, height, 1]], np.float32)


def describe(label: str, flip_test: bool, detector_name: str | None) -> str:
    """`Predictor.info` from its parts, for callers that have the artifacts but load no network."""
    flip = ", flip test" if flip_test else ""
    return f"{label}{flip}; detector: {detector_name or 'none (whole image is one person)'}"


def _load(path: str | Path, kind: str) -> Artifact:
    artifact = load_artifact(path)
    if artifact.meta.kind != kind:
        raise RtmwEdgeError(f"{path} is a {artifact.meta.kind} artifact, not a {kind} model")
    return artifact


def _check_sidecar(artifact: Artifact) -> None:
    """Refuse an artifact whose preprocessing, decoding or keypoint layout differ from what topdown computes."""
    meta = vars(artifact.meta)
    for section, expected in EXPECTED_SIDECAR.items():
        got = {key: meta[section].get(key) for key in expected}
        if got != expected:
            raise RtmwEdgeError(f"{artifact.folder}: {section} {got} is not the supported {expected}")


def flip_test_refused(model: str) -> RtmwEdgeError:
    return RtmwEdgeError(f"{model} is a 3D model and has no flip test (mmpose's RTMW3D has none): drop --flip-test")


def parse_camera(text: str) -> tuple[float, float, float, float]:
    """'fx,fy,cx,cy' (as --camera takes it) -> four floats, or one clear line."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise RtmwEdgeError(f"--camera takes fx,fy,cx,cy (four numbers, pixels), got {text!r}")
    return values[0], values[1], values[2], values[3]


def _checked_camera(camera: object, model: str, is_3d: bool) -> tuple[float, float, float, float] | None:
    """(fx, fy, cx, cy) as floats, focal lengths positive; a camera for a 2D model is a mistake, said plainly."""
    if camera is None:
        return None
    if not is_3d:
        raise RtmwEdgeError(f"a camera is only used by 3D models, and {model} is a 2D model")
    try:
        values = tuple(float(v) for v in camera)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values) or min(values[:2]) <= 0:
        raise RtmwEdgeError(f"camera must be four finite numbers fx,fy,cx,cy (pixels, fx and fy > 0), got {camera!r}")
    return values[0], values[1], values[2], values[3]


def _checked_image(image: object) -> np.ndarray:
    """A uint8 HxW, HxWx1, HxWx3 or HxWx4 array as BGR; anything else is the caller's mistake, said plainly."""
    if not isinstance(image, np.ndarray):
        raise RtmwEdgeError(f"expected an image as a numpy uint8 array HxW or HxWxC, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise RtmwEdgeError(f"expected a uint8 image (0-255), got dtype {image.dtype}")
    return as_bgr(image)


def _as_scored_boxes(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] not in (4, 5):
        raise RtmwEdgeError(f"boxes must be [K,4] x1,y1,x2,y2 or [K,5] with a score, got shape {boxes.shape}")
    if boxes.shape[1] == 4:
        boxes = np.hstack([boxes, np.ones((len(boxes), 1), np.float32)])
    return boxes


def _drop_bad_boxes(boxes: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """Boxes that cannot hold a person are dropped with one warning that counts each reason."""
    bad = np.zeros(len(boxes), bool)
    reasons = []
    with np.errstate(invalid="ignore"):
        for reason, test in _BOX_PROBLEMS.items():
            hit = test(boxes, image_hw) & ~bad
            if hit.any():
                reasons.append(f"{int(hit.sum())} {reason}")
            bad |= hit
    if bad.any():
        logger.warning("dropped %d of %d boxes (%s)", int(bad.sum()), len(boxes), ", ".join(reasons))
    return boxes[~bad]


def _broken_rows(simcc: np.ndarray) -> np.ndarray:
    """Per batch row: any non-finite logit, or all logits zero (what a saturated or overflowed INT8 model gives)."""
    flat = simcc.reshape(len(simcc), -1)
    return ~np.isfinite(flat).all(axis=1) | ~flat.any(axis=1)
