"""How closely a test model agrees with a reference model where there is no ground truth (INT8 against FP32).

Both models see the same people (the same boxes), so the reference's predictions can stand in for ground truth:
`pseudo_ground_truth` turns them into COCO-WholeBody annotations, a keypoint visible where the reference is
confident, and `evaluate` scores the test predictions against them with the usual OKS AP per part. OKS forgives
errors well inside a keypoint's tolerance, so the report adds the box-normalised keypoint error (NME) and, when
the raw SimCC logits are given, their signal-to-noise ratio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.evaluation.coco_wholebody import PART_NAMES, GroundTruth, Results, evaluate, load_results
from rtmw_edge.keypoints import NUM_KEYPOINTS, PARTS

DEFAULT_SCORE_THRESHOLD = 0.3


def pseudo_ground_truth(reference: Sequence[dict], images: Sequence[dict],
                        score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> GroundTruth:
    """The reference's people as COCO-WholeBody ground truth, for `evaluate` to score another model against.

    `reference` holds result entries (as `to_result_entry` writes them). A keypoint is visible (2) where its
    score is above `score_threshold`, else unlabelled (0). A person's bbox and area (which scales OKS) come from
    the entry's `bbox` (x, y, w, h as COCO writes it) or `box` (x1, y1, x2, y2 as `rtmw-edge predict` writes it),
    else from the extent of its visible keypoints. A box is larger than COCO's segment area, so OKS here is a
    little more forgiving than on COCO. `images` (COCO image dicts; only `id` is read) adds images where the
    reference found nobody. `agreement_report` scores the test only where the reference sees a keypoint, so
    that identical predictions score AP 1; `evaluate` on these annotations alone does not.
    """
    return _ground_truth(load_results(list(reference)), reference, images, score_threshold)


def keypoint_error(reference_keypoints: np.ndarray, test_keypoints: np.ndarray, boxes: np.ndarray,
                   reference_scores: np.ndarray,
                   score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> dict[str, float]:
    """Mean keypoint distance over sqrt(box area), per part and 'wholebody' (NaN where no keypoint counts).

    Keypoints [P,133,2], boxes [P,4] x1,y1,x2,y2, scores [P,133]; only keypoints the reference scores above
    `score_threshold` count, because where the reference is unsure there is nothing to agree with. Unlike OKS
    this keeps growing with the error, so it still separates two models that both pass OKS thresholds.
    """
    ref = np.asarray(reference_keypoints, np.float64)
    test = np.asarray(test_keypoints, np.float64)
    boxes = np.asarray(boxes, np.float64)
    scores = np.asarray(reference_scores, np.float64)
    people = len(ref)
    if (ref.shape != (people, NUM_KEYPOINTS, 2) or test.shape != ref.shape or boxes.shape != (people, 4)
            or scores.shape != (people, NUM_KEYPOINTS)):
        raise ValueError(f"want keypoints [P,133,2] twice, boxes [P,4] and scores [P,133]; got {ref.shape}, "
                         f"{test.shape}, {boxes.shape}, {scores.shape}")
    size = np.sqrt(np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 1.0, None), axis=1))  # sub-pixel boxes count as 1
    error = np.linalg.norm(ref - test, axis=-1) / size[:, None]
    counted = scores > score_threshold
    out = {}
    for part in PART_NAMES:
        lo, hi = PARTS.get(part, (0, NUM_KEYPOINTS))
        part_error = error[:, lo:hi][counted[:, lo:hi]]
        out[part] = float(part_error.mean()) if part_error.size else math.nan
    return out


def logit_snr_db(reference: np.ndarray | Sequence[np.ndarray], test: np.ndarray | Sequence[np.ndarray]) -> float:
    """10 log10(sum ref^2 / sum (ref - test)^2) in dB, inf when equal: the test's logit error against the signal.

    Either argument may be one array or several (SimCC x and y logits), paired in order and of equal shapes.
    """
    ref_arrays = [reference] if isinstance(reference, np.ndarray) else list(reference)
    test_arrays = [test] if isinstance(test, np.ndarray) else list(test)
    ref_shapes = [np.shape(a) for a in ref_arrays]
    if ref_shapes != [np.shape(a) for a in test_arrays]:
        raise ValueError(f"reference and test logits differ in shape: {ref_shapes} vs "
                         f"{[np.shape(a) for a in test_arrays]}")
    ref = np.concatenate([np.asarray(a, np.float64).ravel() for a in ref_arrays])
    noise = np.sum((ref - np.concatenate([np.asarray(a, np.float64).ravel() for a in test_arrays])) ** 2)
    if noise == 0:
        return math.inf
    signal = np.sum(ref**2)
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf


def agreement_report(reference: Sequence[dict], test: Sequence[dict], images: Sequence[dict],
                     score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                     reference_logits: np.ndarray | Sequence[np.ndarray] | None = None,
                     test_logits: np.ndarray | Sequence[np.ndarray] | None = None) -> dict:
    """OKS AP per part against the reference, NME per part and (given logits) SNR, as a plain dict.

    `reference` and `test` are result entries for the same people in the same order (same boxes), as two
    backends or precisions produce them from one set of detections. The test is scored only on keypoints the
    reference sees (score above `score_threshold`): a part the reference does not see is neither a miss nor a
    false positive. AP is -1 for a part the reference sees nowhere; NME is NaN there.
    """
    ref_results, test_results = load_results(list(reference)), load_results(list(test))
    if len(reference) != len(test) or not np.array_equal(ref_results.image_id, test_results.image_id):
        raise RtmwEdgeError(f"reference ({len(reference)} people) and test ({len(test)} people) must list the same "
                            "people, image by image, in the same order")
    if (reference_logits is None) != (test_logits is None):
        raise ValueError("give both reference_logits and test_logits, or neither")
    gt = _ground_truth(ref_results, reference, images, score_threshold)
    metrics = evaluate(gt, _where_reference_sees(test_results, gt))
    boxes = np.concatenate([gt.bbox[:, :2], gt.bbox[:, :2] + gt.bbox[:, 2:]], axis=1)
    return {
        "people": len(reference),
        "score_threshold": score_threshold,
        "oks_ap": {part: m.ap for part, m in metrics.items()},
        "nme": keypoint_error(ref_results.keypoints[..., :2], test_results.keypoints[..., :2], boxes,
                              ref_results.keypoints[..., 2], score_threshold),
        "logit_snr_db": None if reference_logits is None else logit_snr_db(reference_logits, test_logits),
    }


def _where_reference_sees(results: Results, gt: GroundTruth) -> Results:
    """The test's keypoint scores zeroed where the reference keypoint is not visible.

    Without this, a person the reference does not see in a part (a hand out of view) is still a test detection
    of that part, free to take another person's match or to count as a false positive: identical predictions
    would score below AP 1. Scores do not enter OKS, so nothing else changes.
    """
    scores = np.where(gt.keypoints[..., 2] > 0, results.keypoints[..., 2], 0.0)
    return replace(results, keypoints=np.concatenate([results.keypoints[..., :2], scores[..., None]], axis=-1))


def _ground_truth(results: Results, entries: Sequence[dict], images: Sequence[dict],
                  score_threshold: float) -> GroundTruth:
    visible = results.keypoints[..., 2] > score_threshold
    boxes = _person_boxes(entries, results.keypoints[..., :2], visible)
    extent = boxes[:, 2:] - boxes[:, :2]
    keypoints = results.keypoints.copy()
    keypoints[..., 2] = np.where(visible, 2.0, 0.0)
    image_ids = [int(image["id"]) for image in images]
    return GroundTruth(
        image_ids=np.unique(np.concatenate([np.array(image_ids, np.int64), results.image_id])),
        category_ids=np.unique(results.category_id),
        image_id=results.image_id,
        category_id=results.category_id,
        keypoints=keypoints,
        area=np.prod(extent, axis=1),
        bbox=np.concatenate([boxes[:, :2], extent], axis=1),
        iscrowd=np.zeros(len(boxes), dtype=bool),
    )


def _person_boxes(entries: Sequence[dict], xy: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """[P,4] x1,y1,x2,y2: the entry's own box, else the extent of its visible keypoints (all when none is)."""
    boxes = np.empty((len(entries), 4))
    for i, entry in enumerate(entries):
        if "bbox" in entry:
            x, y, w, h = (float(v) for v in entry["bbox"])
            boxes[i] = [x, y, x + w, y + h]
        elif "box" in entry:
            boxes[i] = [float(v) for v in entry["box"][:4]]
        else:
            points = xy[i][visible[i]] if visible[i].any() else xy[i]
            boxes[i] = [*points.min(axis=0), *points.max(axis=0)]
    return boxes
