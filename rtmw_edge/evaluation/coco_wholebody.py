"""COCO-WholeBody keypoint AP/AR in numpy, numerically the same as xtcocotools 1.14.3 as mmpose runs it.

mmpose's CocoWholeBodyMetric runs xtcocotools' COCOeval once per part ('keypoints_body', ...,
'keypoints_wholebody') with that part's sigmas and use_area=True. This module reproduces those rules:

- A ground-truth person is ignored for a part when it is a crowd or has no keypoint with visibility > 0 in
  that part; a person with no visible keypoint is scored against its box grown by one box size on each side.
- OKS uses the annotation's `area` (the body segment area) for every part, and only the visible keypoints.
- A detection whose keypoint scores (the third channel) are all <= 0 in a part is no detection for that part.
- Detections are ranked by `score`, or by the part's own score (`foot_score`, `face_score`, `lefthand_score`,
  `righthand_score`, `wholebody_score`) when the entry has one; at most 20 per image, greedy matching at OKS
  .50:.05:.95, 101 recall points, area ranges medium [32², 96²] and large [96², 1e10].
- A detection's area is the extent of its 17 body keypoints, as xtcocotools derives it for keypoint results.
  (xtcocotools would use the box area instead if the first result entry had a `bbox`; mmpose writes none, and
  this module ignores `bbox`.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.keypoints import NUM_KEYPOINTS, PARTS, SIGMAS
from rtmw_edge.table import format_table

PART_NAMES: tuple[str, ...] = (*PARTS, "wholebody")

# part -> its field in the COCO-WholeBody json layout, in the order of the 133 keypoints
_KEYPOINT_FIELDS = {"body": "keypoints", "foot": "foot_kpts", "face": "face_kpts",
                    "left_hand": "lefthand_kpts", "right_hand": "righthand_kpts"}
_SCORE_FIELDS = {"body": "score", "foot": "foot_score", "face": "face_score", "left_hand": "lefthand_score",
                 "right_hand": "righthand_score", "wholebody": "wholebody_score"}
_SLICES = {**{name: slice(lo, hi) for name, (lo, hi) in PARTS.items()}, "wholebody": slice(0, NUM_KEYPOINTS)}

_OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)
_AT_50, _AT_75 = 0, 5  # indices of OKS .50 and .75
_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
_MAX_DETECTIONS = 20
_AREA_RANGES = np.array([[0.0, 1e10], [32.0**2, 96.0**2], [96.0**2, 1e10]])  # all, medium, large
_EPS = np.spacing(1)


@dataclass(frozen=True)
class PartMetrics:
    """The ten numbers COCO reports for keypoints (-1 where the part has no ground truth to score)."""

    ap: float
    ap50: float
    ap75: float
    ap_m: float
    ap_l: float
    ar: float
    ar50: float
    ar75: float
    ar_m: float
    ar_l: float


@dataclass(frozen=True)
class GroundTruth:
    """COCO-WholeBody annotations as arrays; annotation order is kept because it breaks matching ties."""

    image_ids: np.ndarray  # [I] every image of the file, sorted
    category_ids: np.ndarray  # [C] sorted
    image_id: np.ndarray  # [N]
    category_id: np.ndarray  # [N]
    keypoints: np.ndarray  # [N, 133, 3] x, y, visibility
    area: np.ndarray  # [N]
    bbox: np.ndarray  # [N, 4] x, y, w, h
    iscrowd: np.ndarray  # [N] bool


@dataclass(frozen=True)
class Results:
    """Detections as arrays; entry order is kept because it breaks ranking ties."""

    image_id: np.ndarray  # [D]
    category_id: np.ndarray  # [D]
    keypoints: np.ndarray  # [D, 133, 3] x, y, keypoint score
    scores: dict[str, np.ndarray]  # part name -> [D] ranking score
    area: np.ndarray  # [D] extent of the body keypoints


@dataclass(frozen=True)
class _ImageEval:
    scores: np.ndarray  # [D] best first
    matched: np.ndarray  # [T, D]
    ignored: np.ndarray  # [T, D]
    num_regular_gt: int


def load_ground_truth(path: str | os.PathLike) -> GroundTruth:
    """Read a COCO-WholeBody annotation file (the `*_valid` flags are not needed: visibility decides)."""
    data = read_json(path)
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= data.keys():
        raise RtmwEdgeError(f"{path}: not a COCO annotation file (needs images, annotations and categories)")
    anns = data["annotations"]
    try:
        return GroundTruth(
            image_ids=np.unique(np.array([img["id"] for img in data["images"]], dtype=np.int64)),
            category_ids=np.unique(np.array([cat["id"] for cat in data["categories"]], dtype=np.int64)),
            image_id=np.array([a["image_id"] for a in anns], dtype=np.int64),
            category_id=np.array([a["category_id"] for a in anns], dtype=np.int64),
            keypoints=_stack([_entry_keypoints(a, f"{path}: annotation {i}", allow_flat=False)
                              for i, a in enumerate(anns)]),
            area=np.array([a["area"] for a in anns], dtype=np.float64),
            bbox=np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4),
            iscrowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RtmwEdgeError(f"{path}: malformed annotation ({type(exc).__name__}: {exc})") from exc


def load_results(source: str | os.PathLike | Sequence[dict]) -> Results:
    """Read COCO-WholeBody results from a json file or a list of result dicts.

    Each entry has image_id, category_id, score and the parts in `keypoints` (17*3), `foot_kpts` (6*3),
    `face_kpts` (68*3), `lefthand_kpts` and `righthand_kpts` (21*3 each), the third value per keypoint
    being its score. An entry may instead hold all 133 keypoints, in that order, as one flat `keypoints`
    list of 399 values and no other part field; it is split into the parts.
    """
    where = str(source) if isinstance(source, (str, os.PathLike)) else "results"
    entries = read_json(source) if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(entries, list) or not entries:
        raise RtmwEdgeError(f"{where}: expected a non-empty list of result entries")
    try:
        keypoints = _stack([_entry_keypoints(e, f"{where}: entry {i}", allow_flat=True)
                            for i, e in enumerate(entries)])
        scores = {part: np.array([e.get(key, e["score"]) for e in entries], dtype=np.float64)
                  for part, key in _SCORE_FIELDS.items()}
        image_id = np.array([e["image_id"] for e in entries], dtype=np.int64)
        category_id = np.array([e["category_id"] for e in entries], dtype=np.int64)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RtmwEdgeError(f"{where}: malformed result entry ({type(exc).__name__}: {exc})") from exc
    _check_finite(where, keypoints, *scores.values())
    body = keypoints[:, _SLICES["body"], :2]
    extent = body.max(axis=1) - body.min(axis=1)
    return Results(image_id, category_id, keypoints, scores, extent[:, 0] * extent[:, 1])


def to_result_entry(image_id: int, keypoints: np.ndarray, scores: np.ndarray, score: float,
                    category_id: int = 1) -> dict:
    """One person as a standard COCO-WholeBody result dict, each keypoint's score in its third channel."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if keypoints.shape != (NUM_KEYPOINTS, 2) or scores.shape != (NUM_KEYPOINTS,):
        raise ValueError(f"want keypoints [133, 2] and scores [133], got {keypoints.shape}, {scores.shape}")
    flat = np.concatenate([keypoints, scores[:, None]], axis=1)
    entry: dict = {"image_id": int(image_id), "category_id": int(category_id)}
    for part, key in _KEYPOINT_FIELDS.items():
        entry[key] = flat[_SLICES[part]].ravel().tolist()
    entry["score"] = float(score)
    return entry


def evaluate(gt: GroundTruth, results: Results, progress: bool = False) -> dict[str, PartMetrics]:
    """AP/AR of every part and of the whole body, as xtcocotools reports them."""
    _check_ids(gt, results)
    return {part: _evaluate_part(gt, results, part)
            for part in tqdm(PART_NAMES, desc="COCO-WholeBody", unit="part", disable=not progress)}


def metrics_table(metrics: dict[str, PartMetrics]) -> str:
    """The project's one table form: one row per part, columns AP, AP50, AP75, AR, AR50."""
    rows = [[part, *(f"{v:.3f}" for v in (m.ap, m.ap50, m.ap75, m.ar, m.ar50))] for part, m in metrics.items()]
    return format_table(["part", "AP", "AP50", "AP75", "AR", "AR50"], rows)


def read_json(path: str | os.PathLike):
    try:
        with Path(path).open(encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise RtmwEdgeError(f"cannot read {path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RtmwEdgeError(f"{path} is not valid JSON ({exc})") from exc


def person_boxes(data: dict) -> dict[int, np.ndarray]:
    """Image id -> [K,4] x1,y1,x2,y2 of its non-crowd people (all annotations when no category is 'person')."""
    person = {c.get("id") for c in data.get("categories", []) if c.get("name") == "person"}
    found: dict[int, list[list[float]]] = {}
    for ann in data["annotations"]:
        x, y, w, h = (float(v) for v in ann["bbox"])
        if ann.get("iscrowd") or (person and ann.get("category_id") not in person) or w <= 0 or h <= 0:
            continue
        found.setdefault(ann["image_id"], []).append([x, y, x + w, y + h])
    return {image_id: np.array(boxes, np.float32) for image_id, boxes in found.items()}


def _entry_keypoints(entry: dict, where: str, allow_flat: bool) -> np.ndarray:
    """[133, 3] from the per-part fields, or (results only) from one flat 399-value `keypoints` list."""
    if not isinstance(entry, dict):
        raise RtmwEdgeError(f"{where}: expected an object, got {type(entry).__name__}")
    other_parts = list(_KEYPOINT_FIELDS.values())[1:]
    if allow_flat and "keypoints" in entry and not any(key in entry for key in other_parts):
        return _values(entry, "keypoints", NUM_KEYPOINTS, where)
    parts = [_values(entry, key, _SLICES[part].stop - _SLICES[part].start, where)
             for part, key in _KEYPOINT_FIELDS.items()]
    return np.concatenate(parts)


def _values(entry: dict, key: str, count: int, where: str) -> np.ndarray:
    if key not in entry:
        raise RtmwEdgeError(f"{where}: missing '{key}'")
    values = entry[key]
    if not isinstance(values, list) or len(values) != count * 3:
        size = len(values) if isinstance(values, list) else type(values).__name__
        raise RtmwEdgeError(f"{where}: '{key}' has {size} values, expected {count * 3} ({count} keypoints)")
    return np.array(values, dtype=np.float64).reshape(count, 3)


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    return np.stack(arrays) if arrays else np.zeros((0, NUM_KEYPOINTS, 3))


def _check_finite(where: str, *arrays: np.ndarray) -> None:
    for array in arrays:
        bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
        if bad.any():
            raise RtmwEdgeError(f"{where}: entry {int(np.argmax(bad))} has a value that is not finite")


def _check_ids(gt: GroundTruth, results: Results) -> None:
    for name, got, known in (("image", results.image_id, gt.image_ids),
                             ("category", results.category_id, gt.category_ids)):
        unknown = np.setdiff1d(got, known)
        if unknown.size:
            shown = ", ".join(str(i) for i in unknown[:5]) + (", ..." if unknown.size > 5 else "")
            raise RtmwEdgeError(f"results name {unknown.size} {name} id(s) not in the ground truth: {shown}")


def _evaluate_part(gt: GroundTruth, results: Results, part: str) -> PartMetrics:
    shape = (len(_OKS_THRESHOLDS), len(_RECALL_THRESHOLDS), len(gt.category_ids), len(_AREA_RANGES))
    precision, recall = -np.ones(shape), -np.ones(shape[:1] + shape[2:])
    for k, category in enumerate(gt.category_ids):
        for a, evals in enumerate(_evaluate_images(gt, results, part, category)):
            if evals and sum(e.num_regular_gt for e in evals):
                precision[:, :, k, a], recall[:, k, a] = _accumulate(evals)
    return _summarize(precision, recall)


def _evaluate_images(gt: GroundTruth, results: Results, part: str, category: int) -> list[list[_ImageEval]]:
    """Per area range, the matching of every image that has a person or a detection of the category."""
    part_slice = _SLICES[part]
    gt_kpts, dt_kpts = gt.keypoints[:, part_slice], results.keypoints[:, part_slice]
    gt_ignore = gt.iscrowd | ~(gt_kpts[..., 2] > 0).any(axis=1)
    scores = results.scores[part]
    gt_groups = _group_by_image(gt.image_id, gt.category_id == category)
    dt_groups = _group_by_image(results.image_id, (dt_kpts[..., 2] > 0).any(axis=1)
                                & (results.category_id == category))
    per_area: list[list[_ImageEval]] = [[] for _ in _AREA_RANGES]
    none = np.zeros(0, dtype=np.int64)
    for image in gt.image_ids.tolist():
        g = gt_groups.get(image, none)
        d = _top_detections(dt_groups.get(image, none), scores)
        if g.size == 0 and d.size == 0:
            continue
        oks = _oks(dt_kpts[d, :, :2], gt_kpts[g], gt.area[g], gt.bbox[g], SIGMAS[part_slice])
        ignore = gt_ignore[g] | _outside_area_ranges(gt.area[g])
        matched, ignored = _match(oks, ignore, gt.iscrowd[g])
        ignored |= ~matched & _outside_area_ranges(results.area[d])[:, None, :]
        for a, evals in enumerate(per_area):
            evals.append(_ImageEval(scores[d], matched[a], ignored[a], int(np.count_nonzero(~ignore[a]))))
    return per_area


def _group_by_image(image_id: np.ndarray, mask: np.ndarray) -> dict[int, np.ndarray]:
    """Image id -> indices of the masked rows, in their original order."""
    rows = np.flatnonzero(mask)
    if not rows.size:  # no row at all (an INT8 model that lost every keypoint): no group, not one empty one
        return {}
    order = rows[np.argsort(image_id[rows], kind="stable")]
    keys, starts = np.unique(image_id[order], return_index=True)
    return dict(zip(keys.tolist(), np.split(order, starts[1:]), strict=True))


def _top_detections(rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The best-scored detections of one image, ties in entry order, as COCO's mergesort ranks them."""
    return rows[np.argsort(-scores[rows], kind="stable")][:_MAX_DETECTIONS]


def _outside_area_ranges(area: np.ndarray) -> np.ndarray:
    """[A, N]: whether each area falls outside each area range."""
    return (area[None, :] < _AREA_RANGES[:, :1]) | (area[None, :] > _AREA_RANGES[:, 1:])


def _oks(dt_xy: np.ndarray, gt_kpts: np.ndarray, gt_area: np.ndarray, gt_bbox: np.ndarray,
         sigmas: np.ndarray) -> np.ndarray:
    """[D, G] object keypoint similarity; a person without visible keypoints is scored against its box."""
    visible = gt_kpts[..., 2] > 0  # [G, K]
    num_visible = visible.sum(axis=1)  # [G]
    delta = np.where((num_visible > 0)[None, :, None, None],
                     dt_xy[:, None] - gt_kpts[None, :, :, :2], _distance_outside_box(dt_xy, gt_bbox))
    squared = delta[..., 0] ** 2 + delta[..., 1] ** 2  # [D, G, K]
    e = squared / (2 * sigmas) ** 2 / (gt_area[None, :, None] + _EPS) / 2
    counted = visible | (num_visible == 0)[:, None]
    return (np.exp(-e) * counted).sum(axis=-1) / counted.sum(axis=1)


def _distance_outside_box(dt_xy: np.ndarray, gt_bbox: np.ndarray) -> np.ndarray:
    """[D, G, K, 2] per-axis distance of each keypoint to the gt box grown to three times its size."""
    low = (gt_bbox[:, :2] - gt_bbox[:, 2:])[None, :, None]
    high = (gt_bbox[:, :2] + gt_bbox[:, 2:] * 2)[None, :, None]
    points = dt_xy[:, None]
    return np.maximum(0.0, low - points) + np.maximum(0.0, points - high)


def _match(oks: np.ndarray, gt_ignore: np.ndarray, crowd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching, detections best first, for all [A] area ranges and [T] OKS thresholds at once.

    `gt_ignore` is [A, G]; returns [A, T, D] matched and [A, T, D] ignored. Each detection takes the free
    person of highest OKS (the last one on ties), a regular person before an ignored one; a crowd can be taken
    many times. A detection matched to an ignored person is ignored.
    """
    thresholds = np.minimum(_OKS_THRESHOLDS, 1 - 1e-10)[:, None]  # [T, 1]
    matched = np.zeros((len(gt_ignore), len(thresholds), len(oks)), dtype=bool)
    ignored = np.zeros_like(matched)
    num_gt = gt_ignore.shape[1]
    taken = np.zeros((len(gt_ignore), len(thresholds), num_gt), dtype=bool)
    for d, row in enumerate(oks):
        if row.max(initial=0.0) < thresholds[0, 0]:
            continue  # matches nothing: saves most of the time on false positives
        allowed = (row >= thresholds) & (~taken | crowd)  # [A, T, G]
        regular = allowed & ~gt_ignore[:, None, :]
        candidates = np.where(regular.any(axis=-1, keepdims=True), regular, allowed)
        best = num_gt - 1 - np.argmax(np.where(candidates, row, -1.0)[..., ::-1], axis=-1)  # [A, T]
        a, t = np.nonzero(candidates.any(axis=-1))
        taken[a, t, best[a, t]] = True
        matched[a, t, d] = True
        ignored[a, t, d] = gt_ignore[a, best[a, t]]
    return matched, ignored


def _accumulate(evals: list[_ImageEval]) -> tuple[np.ndarray, np.ndarray]:
    """([T, R] interpolated precision, [T] recall) over all images, detections ranked across images."""
    scores = np.concatenate([e.scores for e in evals])
    order = np.argsort(-scores, kind="stable")
    matched = np.concatenate([e.matched for e in evals], axis=1)[:, order]
    ignored = np.concatenate([e.ignored for e in evals], axis=1)[:, order]
    num_gt = sum(e.num_regular_gt for e in evals)
    tp = np.cumsum(matched & ~ignored, axis=1, dtype=np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1, dtype=np.float64)
    if tp.shape[1] == 0:
        return np.zeros((len(tp), len(_RECALL_THRESHOLDS))), np.zeros(len(tp))
    rc = tp / num_gt
    pr = np.maximum.accumulate((tp / (fp + tp + _EPS))[:, ::-1], axis=1)[:, ::-1]  # precision envelope
    precision = np.zeros((len(rc), len(_RECALL_THRESHOLDS)))
    for t in range(len(rc)):
        at = np.searchsorted(rc[t], _RECALL_THRESHOLDS, side="left")
        inside = at < rc.shape[1]
        precision[t, inside] = pr[t, at[inside]]
    return precision, rc[:, -1]


def _summarize(precision: np.ndarray, recall: np.ndarray) -> PartMetrics:
    """precision [T, R, K, A] and recall [T, K, A] (-1 = nothing to score) to the ten COCO numbers."""
    aps = [precision[..., 0], precision[_AT_50, ..., 0], precision[_AT_75, ..., 0], precision[..., 1],
           precision[..., 2]]
    ars = [recall[..., 0], recall[_AT_50, ..., 0], recall[_AT_75, ..., 0], recall[..., 1], recall[..., 2]]
    return PartMetrics(*(_mean_scored(x) for x in aps + ars))


def _mean_scored(values: np.ndarray) -> float:
    scored = values[values > -1]
    return float(np.mean(scored)) if scored.size else -1.0

