"""Calibration data for INT8 quantization: network inputs made exactly as inference makes them.

Post-training quantization sets each tensor's INT8 range from the activations of a few hundred inputs, so those
inputs must be what the deployed network sees: person crops from `rtmw_edge.topdown.crop` for the pose model and
frames from `rtmw_edge.detector.letterbox` for the detector. Nothing here preprocesses an image any other way.

Sources (calibration_sources.py): None (the public-domain photos shipped with the package), a folder, one image,
a video or a COCO / COCO-WholeBody JSON. Without a JSON or a detector, each image is one person box. A detector
may instead be calibrated on scenes composed from the source's images (scenes.py). Images
smaller than half the network input on a side are warned about: their inputs are mostly upsampled pixels.

Selection and augmentation are seeded, so the same arguments give the same bytes on every run:
- the candidates (every person box, or every frame for the detector) are shuffled by the seed;
- augment=False: the first `size` candidates are used as they are; asking for more than exist is an error;
- augment=True: the shuffled candidates are repeated up to `size` and *every* input is augmented: box jitter
  (scale 0.9-1.2, centre shift up to 10% of the box), a horizontal flip half of the time, contrast x0.85-1.15
  and brightness +-16 grey levels. Augmenting every input, not only the repeats, keeps the set's statistics from
  depending on how many inputs were asked for, and the jitter stands in for the detector's box noise that the
  pose model meets at inference. The augmented image and box then go through topdown.crop (pose), or the frame
  is cut to its jittered box and goes through letterbox (detector).

Sets are cached in cache_dir()/calibration/<key>.npz; the key covers the bytes of every source file, the
arguments, the detector's files and settings, and the OpenCV version (it decodes the images).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from rtmw_edge import topdown
from rtmw_edge.artifact import sha256_file
from rtmw_edge.cache import cache_dir
from rtmw_edge.detector import Detector, letterbox
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.fileio import atomic_file
from rtmw_edge.quantization.calibration_sources import Frame, Source, open_source, skipped_text
from rtmw_edge.quantization.scenes import SCENES_VERSION, composed

CACHE_VERSION = 1  # bump whenever sets are built differently, so that old cache files miss
SCALE_RANGE = (0.9, 1.2)
MAX_SHIFT = 0.1  # of the box width / height
FLIP_PROBABILITY = 0.5
CONTRAST = 0.15
BRIGHTNESS = 16.0
TINY_FRACTION = 0.5  # images below this fraction of the network input on a side are warned about
_log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    """Network inputs for calibration. Compare sets by `sha256` (arrays have no single truth value).

    `sources[i]` names where `inputs[i]` came from: '<image or video@frame>#<k>', the k-th box of that image
    (for the detector, box 0 is the whole frame).
    """

    inputs: np.ndarray  # [N,C,H,W] float32, exactly the network input
    sha256: str  # of the shape written as text, then the bytes of `inputs`
    sources: list[str]
    description: str


@dataclass(frozen=True)
class _Request:
    kind: str  # 'pose' or 'detector'
    input_hw: tuple[int, int]
    size: int
    seed: int
    augment: bool


@dataclass(frozen=True)
class _Candidate:
    frame: int
    box: np.ndarray
    name: str


def pose_calibration(source: str | Path | None, input_hw: tuple[int, int], size: int, seed: int = 0,
                     augment: bool = True, detector: Detector | None = None, images_dir: str | Path | None = None,
                     cache: bool = True, progress: bool = False) -> CalibrationSet:
    """`size` person crops [size,3,H,W] from `source`, made by topdown.crop exactly as at inference.

    Boxes come from the COCO JSON's annotations (then `detector` is not used), else from `detector`, else each
    image is one box.
    """
    request = _Request("pose", _check_hw(input_hw), _check_size(size), int(seed), bool(augment))
    src = open_source(source, images_dir, size)
    key = {"detector": _detector_identity(detector)}
    boxes_from = "whole images as boxes" if detector is None else f"boxes from {detector.runner.path.name}"
    if any(frame.boxes is not None for frame in src.frames):
        boxes_from = "ground-truth boxes"
    build = partial(_build, src, request, "person crops", partial(_person_boxes, detector),
                    partial(_pose_input, input_hw=request.input_hw), boxes_from, progress)
    return _cached(src, request, key, cache, build)


def detector_calibration(source: str | Path | None, input_hw: tuple[int, int], size: int, seed: int = 0,
                         augment: bool = True, cache: bool = True, progress: bool = False,
                         images_dir: str | Path | None = None, scenes: bool = False) -> CalibrationSet:
    """`size` frames [size,3,H,W] from `source`, made by detector.letterbox exactly as at inference; with
    `scenes`, the frames are scenes composed from the source's images (scenes.py)."""
    request = _Request("detector", _check_hw(input_hw), _check_size(size), int(seed), bool(augment))
    src = open_source(source, images_dir, size)
    if scenes:
        src = composed(src, request.size, request.seed)
    build = partial(_build, src, request, "frames", _frame_box, partial(_detector_input, input_hw=request.input_hw),
                    "whole frames", progress)
    return _cached(src, request, {"scenes": scenes, "scenes_version": SCENES_VERSION} if scenes else {}, cache,
                   build)


# --------------------------------------------------------------------------- requests


def _check_size(size: int) -> int:
    if size <= 0:
        raise RtmwEdgeError(f"calibration size must be a positive number of inputs, got {size}")
    return int(size)


def _check_hw(input_hw: tuple[int, int]) -> tuple[int, int]:
    if len(input_hw) != 2 or min(input_hw) <= 0:
        raise RtmwEdgeError(f"input_hw must be a positive (height, width), got {input_hw}")
    return int(input_hw[0]), int(input_hw[1])


def _detector_identity(detector: Detector | None) -> dict | None:
    """What decides the boxes a detector finds: its network files, backend and thresholds."""
    if detector is None:
        return None
    runner = detector.runner
    # a network's companions (weights) share its stem, whatever the backend
    files = [runner.path, *sorted(p for p in runner.path.parent.glob(f"{runner.path.stem}.*") if p != runner.path)]
    return {"backend": runner.backend, "files": [sha256_file(f) for f in files],
            "score_threshold": detector.score_threshold, "nms_iou": detector.nms_iou}


# --------------------------------------------------------------------------- building


def _whole(image: np.ndarray) -> np.ndarray:
    return np.array([[0, 0, image.shape[1], image.shape[0]]], np.float32)


def _person_boxes(detector: Detector | None, frame: Frame) -> np.ndarray | None:
    """Known boxes, else the detector's, else the whole image; None when the image cannot be decoded."""
    if frame.boxes is not None:
        return frame.boxes
    image = frame.load()
    if image is None:
        return None
    return _whole(image) if detector is None else detector.detect(image)[:, :4]


def _frame_box(frame: Frame) -> np.ndarray | None:
    image = frame.load()
    return None if image is None else _whole(image)


def _pose_input(image: np.ndarray, box: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    return topdown.crop(image, box[None], input_hw).batch[0]


def _detector_input(image: np.ndarray, box: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """The frame cut to `box` (clipped to the frame; the whole frame unless augmented), then letterboxed."""
    height, width = image.shape[:2]
    x1, y1 = np.clip(np.floor(box[:2]), 0, [width - 1, height - 1]).astype(int)
    x2, y2 = np.clip(np.ceil(box[2:]), [x1 + 1, y1 + 1], [width, height]).astype(int)
    return letterbox(image[y1:y2, x1:x2], input_hw)[0][0]


def _build(src: Source, request: _Request, what: str, find_boxes: Callable[[Frame], np.ndarray | None],
           make_input: Callable[[np.ndarray, np.ndarray], np.ndarray], boxes_from: str,
           progress: bool) -> CalibrationSet:
    candidates, unreadable = _candidates(src, find_boxes, progress)
    if not candidates:
        if len(unreadable) == len(src.frames):
            raise RtmwEdgeError(f"no readable image in {src.label}: {skipped_text(src.not_images, unreadable)}")
        raise RtmwEdgeError(f"no person in {src.label} ({len(src.frames) - len(unreadable)} readable images)")
    if not request.augment and len(candidates) < request.size:
        raise RtmwEdgeError(f"only {len(candidates)} {what} in {src.label}, asked for {request.size}: add images, "
                            "lower the size or enable augmentation")
    picks, draws = _plan(len(candidates), request)
    inputs = np.empty((request.size, 3, *request.input_hw), np.float32)
    used, tiny = _fill(inputs, src, [candidates[i] for i in picks], draws, make_input, request.input_hw, progress)
    hw = f"{request.input_hw[0]}x{request.input_hw[1]}"
    tiny_text = f"{tiny} of {used} images are smaller than {TINY_FRACTION:.0%} of the network input ({hw}) on a side"
    if tiny:
        _log.warning("calibration: %s: their inputs are mostly upsampled pixels; use larger images", tiny_text)
    skipped = src.not_images + unreadable
    description = (f"{request.size} {what} of {hw} from {src.label}, {boxes_from}: {len(candidates)} distinct, "
                   f"{'augmented' if request.augment else 'not augmented'}, seed {request.seed}"
                   + (f"; {skipped_text(src.not_images, unreadable)}" if skipped else "")
                   + (f"; {tiny_text}" if tiny else ""))
    return _calibration_set(inputs, [candidates[i].name for i in picks], description)


def _candidates(src: Source, find_boxes: Callable[[Frame], np.ndarray | None],
                progress: bool) -> tuple[list[_Candidate], list[str]]:
    """Every box of every frame, in frame order, and the names of the frames that could not be decoded."""
    candidates, unreadable = [], []
    for index, frame in enumerate(tqdm(src.frames, desc="calibration boxes", unit="image", disable=not progress)):
        boxes = find_boxes(frame)
        if boxes is None:
            unreadable.append(frame.name)
            continue
        candidates.extend(_Candidate(index, box, f"{frame.name}#{k}") for k, box in enumerate(boxes))
    return candidates, unreadable


def _plan(count: int, request: _Request) -> tuple[np.ndarray, np.ndarray | None]:
    """Which candidate each input is, and its six augmentation draws in [0, 1) (None without augmentation)."""
    rng = np.random.default_rng(request.seed)
    order = rng.permutation(count)
    if not request.augment:
        return order[: request.size], None
    return np.resize(order, request.size), rng.random((request.size, 6))


def _fill(inputs: np.ndarray, src: Source, picked: list[_Candidate], draws: np.ndarray | None,
          make_input: Callable[[np.ndarray, np.ndarray], np.ndarray], input_hw: tuple[int, int],
          progress: bool) -> tuple[int, int]:
    """Decode each frame once and make all of its inputs, each into its slot of the plan; returns how many
    images were used and how many of them are tiny next to the network input."""
    slots: dict[int, list[int]] = {}
    for slot, candidate in enumerate(picked):
        slots.setdefault(candidate.frame, []).append(slot)
    tiny = 0
    for index in tqdm(sorted(slots), desc="calibration inputs", unit="image", disable=not progress):
        image = src.frames[index].load()
        if image is None:
            raise RtmwEdgeError(f"{src.frames[index].name} of {src.label} could not be decoded")
        tiny += any(have < TINY_FRACTION * need for have, need in zip(image.shape[:2], input_hw, strict=True))
        for slot in slots[index]:
            box = picked[slot].box
            inputs[slot] = make_input(image, box) if draws is None else make_input(*_augment(image, box, draws[slot]))
    return len(slots), tiny


def _augment(image: np.ndarray, box: np.ndarray, draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Jitter the box, flip half of the time, change contrast and brightness: what inference meets, mildly."""
    u_scale, u_dx, u_dy, u_flip, u_contrast, u_brightness = draws
    extent = box[2:] - box[:2]
    center = (box[:2] + box[2:]) / 2 + (np.array([u_dx, u_dy]) * 2 - 1) * MAX_SHIFT * extent
    half = extent * (SCALE_RANGE[0] + u_scale * (SCALE_RANGE[1] - SCALE_RANGE[0])) / 2
    box = np.concatenate([center - half, center + half])
    if u_flip < FLIP_PROBABILITY:
        image = cv2.flip(image, 1)
        box = np.array([image.shape[1] - box[2], box[1], image.shape[1] - box[0], box[3]])
    alpha = 1 + (2 * u_contrast - 1) * CONTRAST
    beta = (2 * u_brightness - 1) * BRIGHTNESS
    return cv2.addWeighted(image, alpha, image, 0.0, beta), box.astype(np.float32)  # rounds and saturates


def _calibration_set(inputs: np.ndarray, sources: list[str], description: str) -> CalibrationSet:
    inputs = np.ascontiguousarray(inputs, np.float32)
    digest = hashlib.sha256(str(inputs.shape).encode())
    digest.update(inputs.data)
    return CalibrationSet(inputs, digest.hexdigest(), sources, description)


# --------------------------------------------------------------------------- cache


def _cached(src: Source, request: _Request, extra_key: dict, cache: bool,
            build: Callable[[], CalibrationSet]) -> CalibrationSet:
    """The set from the cache when its key is there, else built (and stored when `cache`)."""
    if not cache:
        return build()
    key = {"version": CACHE_VERSION, "opencv": cv2.__version__, "request": asdict(request), **extra_key,
           "content": [[name, sha256_file(path)] for name, path in src.files]}
    path = cache_dir() / "calibration" / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()}.npz"
    found = _load(path)
    if found is not None:
        return found
    result = build()
    with atomic_file(path, overwrite=True) as tmp, tmp.open("wb") as f:
        np.savez(f, inputs=result.inputs, sources=np.array(result.sources), description=np.array(result.description))
    return result


def _load(path: Path) -> CalibrationSet | None:
    """A cached set, or None when absent or damaged (it is then built again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return _calibration_set(data["inputs"], [str(s) for s in data["sources"]], str(data["description"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
