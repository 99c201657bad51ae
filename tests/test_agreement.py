"""Agreement with a reference model: perfect for identical predictions, worse with noise, threshold respected."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from oracle import MINI_DIR, need

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.evaluation import PART_NAMES, load_ground_truth, to_result_entry
from rtmw_edge.evaluation.agreement import (
    agreement_report,
    keypoint_error,
    logit_snr_db,
    pseudo_ground_truth,
)
from rtmw_edge.keypoints import NUM_KEYPOINTS, PARTS

GT_FILE = MINI_DIR / "example_wholebody_val.json"
CONFIDENT, UNSURE = 0.9, 0.1


@pytest.fixture(scope="module")
def people() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """The 26 annotated people as a reference model would see them: (keypoints, scores, image ids, images)."""
    gt = load_ground_truth(need(GT_FILE))
    scores = np.where(gt.keypoints[..., 2] > 0, CONFIDENT, UNSURE)
    return gt.keypoints[..., :2], scores, gt.image_id, json.loads(GT_FILE.read_text())["images"]


def _entries(keypoints: np.ndarray, scores: np.ndarray, image_ids: np.ndarray, boxes: np.ndarray | None = None,
             ) -> list[dict]:
    entries = [to_result_entry(i, k, s, 1.0) for i, k, s in zip(image_ids, keypoints, scores, strict=True)]
    if boxes is not None:
        for entry, box in zip(entries, boxes, strict=True):
            entry["box"] = box.tolist()
    return entries


def _boxes(keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """x1,y1,x2,y2 around each person's confident keypoints, grown by 10 px."""
    out = []
    for xy, s in zip(keypoints, scores, strict=True):
        seen = xy[s > 0.3] if (s > 0.3).any() else xy
        out.append([*(seen.min(axis=0) - 10), *(seen.max(axis=0) + 10)])
    return np.array(out)


def test_identical_predictions_agree_perfectly(people) -> None:
    keypoints, scores, image_ids, images = people
    reference = _entries(keypoints, scores, image_ids, _boxes(keypoints, scores))
    logits = np.random.default_rng(0).normal(size=(26, 133, 384))

    report = agreement_report(reference, reference, images, reference_logits=logits, test_logits=logits.copy())

    assert report["people"] == 26
    assert report["oks_ap"] == dict.fromkeys(PART_NAMES, 1.0)
    assert report["nme"] == dict.fromkeys(PART_NAMES, 0.0)
    assert report["logit_snr_db"] == math.inf


def test_ap_falls_monotonically_as_keypoint_noise_grows(people) -> None:
    keypoints, scores, image_ids, images = people
    boxes = _boxes(keypoints, scores)
    reference = _entries(keypoints, scores, image_ids, boxes)
    noise = np.random.default_rng(0).standard_normal(keypoints.shape)

    aps = []
    for sigma in (0.0, 1.0, 2.0, 4.0, 8.0):
        test = _entries(keypoints + sigma * noise, scores, image_ids, boxes)
        aps.append(agreement_report(reference, test, images)["oks_ap"])

    wholebody = [ap["wholebody"] for ap in aps]
    assert all(a > b for a, b in itertools.pairwise(wholebody)), wholebody
    for part in PART_NAMES:
        assert all(a >= b for a, b in itertools.pairwise(ap[part] for ap in aps)), part
    assert wholebody[0] == 1.0 and wholebody[-1] < 0.2


def test_pseudo_ground_truth_sees_only_keypoints_scored_above_the_threshold(people) -> None:
    keypoints, _, image_ids, images = people
    scores = np.random.default_rng(1).uniform(0.0, 0.6, size=(26, NUM_KEYPOINTS))
    scores[:, 0] = 0.3  # exactly at the threshold: not visible
    gt = pseudo_ground_truth(_entries(keypoints, scores, image_ids), images, score_threshold=0.3)

    np.testing.assert_array_equal(gt.keypoints[..., 2], np.where(scores > 0.3, 2.0, 0.0))
    np.testing.assert_array_equal(gt.keypoints[..., :2], keypoints)
    for xy, visible, (x, y, w, h), area in zip(keypoints, scores > 0.3, gt.bbox, gt.area, strict=True):
        np.testing.assert_allclose([x, y, x + w, y + h], [*xy[visible].min(axis=0), *xy[visible].max(axis=0)])
        assert area == pytest.approx(w * h)
    assert set(gt.image_ids) == {image["id"] for image in images}


def test_pseudo_ground_truth_takes_the_entry_box_either_way_it_is_written(people) -> None:
    keypoints, scores, image_ids, images = people
    entries = _entries(keypoints[:2], scores[:2], image_ids[:2])
    entries[0]["bbox"] = [10.0, 20.0, 30.0, 40.0]  # COCO x, y, w, h
    entries[1]["box"] = [10.0, 20.0, 40.0, 60.0]  # rtmw-edge x1, y1, x2, y2
    gt = pseudo_ground_truth(entries, images)

    np.testing.assert_array_equal(gt.bbox, [[10, 20, 30, 40], [10, 20, 30, 40]])
    np.testing.assert_array_equal(gt.area, [1200, 1200])


def test_keypoint_error_is_distance_over_box_size_on_confident_keypoints_only(people) -> None:
    keypoints, scores, _, _ = people
    boxes = _boxes(keypoints, scores)
    test = keypoints + np.array([3.0, 4.0])  # 5 px everywhere
    test[scores <= 0.3] += 1000.0  # unsure keypoints: must not count

    error = keypoint_error(keypoints, test, boxes, scores)

    size = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1))
    for part in PART_NAMES:
        lo, hi = PARTS.get(part, (0, NUM_KEYPOINTS))
        per_person = np.repeat(5.0 / size, hi - lo).reshape(-1, hi - lo)
        assert error[part] == pytest.approx(per_person[scores[:, lo:hi] > 0.3].mean()), part
    nobody = keypoint_error(keypoints, test, boxes, np.zeros_like(scores))
    assert all(math.isnan(v) for v in nobody.values())


def test_logit_snr_is_signal_over_error_in_decibels() -> None:
    simcc_x = np.random.default_rng(2).normal(size=(4, 133, 384))
    simcc_y = np.random.default_rng(3).normal(size=(4, 133, 512))

    assert logit_snr_db(simcc_x, simcc_x.copy()) == math.inf
    assert logit_snr_db(simcc_x, simcc_x * 1.1) == pytest.approx(20.0)
    assert logit_snr_db((simcc_x, simcc_y), (simcc_x * 1.01, simcc_y * 1.01)) == pytest.approx(40.0)
    with pytest.raises(ValueError, match="differ in shape"):
        logit_snr_db(simcc_x, simcc_y)


def test_report_refuses_people_that_do_not_pair_up(people) -> None:
    keypoints, scores, image_ids, images = people
    reference = _entries(keypoints, scores, image_ids)
    with pytest.raises(RtmwEdgeError, match="must list the same people"):
        agreement_report(reference, reference[1:], images)
    with pytest.raises(RtmwEdgeError, match="must list the same people"):
        agreement_report(reference, reference[::-1], images)
