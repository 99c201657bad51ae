"""Person boxes from an RTMDet or YOLOX detector on any backend: the top-down pose model needs one box per person.

The output layout is read from the outputs themselves (RTMDet's raw three-level head, mmdeploy's end-to-end
`dets`/`labels`, or such a graph cut before its NMS: `boxes`/`scores`), so nothing here depends on which backend
runs the network; NMS is always ours, with the thresholds given. The letterbox's mean, std and pad
come from the artifact's sidecar (RTMDet's when a bare model file is given).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rtmw_edge.artifact import METADATA_FILE, load_artifact
from rtmw_edge.backends import open_runner
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.model.detectors import PAD_VALUE, RTMDET_MEAN_BGR, RTMDET_STD_BGR

MEAN_BGR = np.array(RTMDET_MEAN_BGR, np.float32)
STD_BGR = np.array(RTMDET_STD_BGR, np.float32)


class Detector:
    """`detect(image)` gives [K,5] boxes (x1, y1, x2, y2, score) in image pixels, best first."""

    def __init__(
        self,
        path: str | Path,
        backend: str | None = None,
        score_threshold: float = 0.3,
        nms_iou: float = 0.45,
        threads: int | None = None,
        device: str | None = None,
        preprocessing: dict | None = None,
        **options,
    ) -> None:
        self.runner = open_runner(path, backend, threads=threads, device=device, **options)
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.mean, self.std, self.pad_value = _normalisation(preprocessing or {}, path)

    def detect(self, image: np.ndarray) -> np.ndarray:
        image = as_bgr(image)
        size = self.runner.input_shape[1:]
        batch, ratio = letterbox(image, size, self.mean, self.std, self.pad_value)
        boxes, scores = _decode(self.runner.run(batch), size)
        above = scores > self.score_threshold
        boxes, scores = boxes[above], scores[above]
        keep = nms(boxes, scores, self.nms_iou)
        boxes = boxes[keep] / ratio
        height, width = image.shape[:2]
        np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
        return np.concatenate([boxes, scores[keep, None]], axis=1).astype(np.float32)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Gray and BGRA images become BGR, the only layout the network was trained on."""
    image = np.asarray(image)
    channels = 1 if image.ndim == 2 else image.shape[-1] if image.ndim == 3 else 0
    if image.size == 0 or channels not in (1, 3, 4):
        raise RtmwEdgeError(f"expected a gray, BGR or BGRA image, got an array of shape {image.shape}")
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _normalisation(preprocessing: dict, path: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, std, pad) of a detector's sidecar; only BGR detectors exist (RTMDet and YOLOX both keep BGR)."""
    order = preprocessing.get("channel_order", "BGR")
    if order != "BGR":
        raise RtmwEdgeError(f"detector {path}: channel order {order!r} is not supported (only BGR)")
    mean = np.array(preprocessing.get("mean", MEAN_BGR), np.float32)
    std = np.array(preprocessing.get("std", STD_BGR), np.float32)
    return mean, std, float(preprocessing.get("letterbox_pad", PAD_VALUE))


def letterbox(image_bgr: np.ndarray, size: tuple[int, int], mean: np.ndarray = MEAN_BGR, std: np.ndarray = STD_BGR,
              pad_value: float = PAD_VALUE) -> tuple[np.ndarray, float]:
    """A detector's test-time input [1,3,H,W] and the scale r: resize keeping aspect, pad bottom/right, normalise
    (RTMDet's mean and std unless others are given; YOLOX takes raw pixels: mean 0, std 1).

    Sizes round as mmcv's rescale_size does (int(x * r + 0.5)), so boxes line up with mmdet's.
    """
    net_h, net_w = size
    height, width = image_bgr.shape[:2]
    ratio = min(net_h / height, net_w / width)
    new_w = min(max(int(width * ratio + 0.5), 1), net_w)
    new_h = min(max(int(height * ratio + 0.5), 1), net_h)
    canvas = np.full((net_h, net_w, 3), pad_value, np.float32)
    canvas[:new_h, :new_w] = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = (canvas - mean) / std
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None]), ratio


def _decode(outputs: list[np.ndarray], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [M,4] and scores [M] in network-input pixels from the first image of either output layout."""
    if _is_head(outputs):
        return _decode_head(outputs, size)
    if (found := _boxes_and_scores(outputs)) is not None:
        boxes, scores = found
        return boxes[0].astype(np.float32), scores[0, :, PERSON_CLASS].astype(np.float32)
    dets = _dets(outputs)
    if dets is None:
        raise RtmwEdgeError(f"detector outputs {_shapes(outputs)} are {_NOT_A_DETECTOR}")
    return dets[0, :, :4].astype(np.float32), dets[0, :, 4].astype(np.float32)


_NOT_A_DETECTOR = ("neither RTMDet head maps [N,H,W,5], boxes [N,M,4] + scores [N,M,C] nor mmdeploy dets [N,k,5] + "
                   "labels [N,k]")
PERSON_CLASS = 0  # of a detector's scores [N,M,C]: person detectors have one class, COCO's person is its first


def check_detector_outputs(outputs: list[np.ndarray], path: Path) -> None:
    """Refuse a network whose outputs no detector gives (a pose model passed as the detector) before it is used."""
    if not _is_head(outputs) and _boxes_and_scores(outputs) is None and _dets(outputs) is None:
        raise RtmwEdgeError(f"{path} is not a person detector: its outputs {_shapes(outputs)} are {_NOT_A_DETECTOR}")


def _is_head(outputs: list[np.ndarray]) -> bool:
    return bool(outputs) and all(out.ndim == 4 and out.shape[-1] == 5 for out in outputs)


def _boxes_and_scores(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """An end-to-end detector cut before its NMS (`onnx_io.without_nms`): boxes [N,M,4], scores [N,M,C]."""
    if len(outputs) != 2 or any(out.ndim != 3 for out in outputs):
        return None
    boxes, scores = outputs
    return (boxes, scores) if boxes.shape[-1] == 4 and scores.shape[:2] == boxes.shape[:2] else None


def _dets(outputs: list[np.ndarray]) -> np.ndarray | None:
    return next((out for out in outputs if out.ndim == 3 and out.shape[-1] == 5), None)


def _shapes(outputs: list[np.ndarray]) -> str:
    return ", ".join(str(tuple(out.shape)) for out in outputs) or "none"


def _decode_head(maps: list[np.ndarray], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each cell (x, y) of a level with stride s predicts a score logit and distances l,t,r,b from (x*s, y*s)."""
    boxes, scores = [], []
    for level in maps:
        level = level[0].astype(np.float32)
        rows, cols = level.shape[:2]
        ys, xs = np.mgrid[0:rows, 0:cols]
        points = np.stack([xs * (size[1] / cols), ys * (size[0] / rows)], axis=-1).reshape(-1, 2)
        distances = level[..., 1:].reshape(-1, 4)
        boxes.append(np.concatenate([points - distances[:, :2], points + distances[:, 2:]], axis=1))
        scores.append(_sigmoid(level[..., 0].reshape(-1)))
    return np.concatenate(boxes).astype(np.float32), np.concatenate(scores)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    """The tanh form cannot overflow, unlike 1 / (1 + exp(-x)) for very negative logits."""
    return 0.5 * (1.0 + np.tanh(0.5 * logits))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU [len(a), len(b)] of x1,y1,x2,y2 boxes."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:4] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:4] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, np.finfo(np.float32).tiny)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes greedy class-agnostic NMS keeps, best score first (people are one class)."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        order = rest[box_iou(boxes[best : best + 1], boxes[rest])[0] <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def open_detector(path: str | Path | None, score_threshold: float = 0.3, threads: int | None = None,
                  device: str | None = None, options: dict | None = None) -> Detector | None:
    """A detector artifact's sidecar names its file and blobs; a bare model file is opened as it is."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir() or (path.parent / METADATA_FILE).is_file():
        artifact = load_artifact(path)
        meta = artifact.meta
        if meta.kind != "detector":
            raise RtmwEdgeError(f"{path} is a {meta.kind} artifact, not a detector")
        path = artifact.main_path
        options = {"backend": meta.backend, **artifact.runner_options, "preprocessing": meta.preprocessing,
                   **(options or {})}
    elif not path.is_file():
        raise RtmwEdgeError(f"detector {path} does not exist")
    return Detector(path, score_threshold=score_threshold, threads=threads, device=device, **(options or {}))
