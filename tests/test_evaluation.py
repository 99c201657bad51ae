"""Our COCO-WholeBody evaluator against xtcocotools 1.14.3 (the mmpose reference) and faster-coco-eval."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest
from oracle import MINI_DIR, need

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.evaluation import (
    PART_NAMES,
    evaluate,
    load_ground_truth,
    load_results,
    metrics_table,
    to_result_entry,
)
from rtmw_edge.keypoints import NUM_KEYPOINTS, PARTS, SIGMAS

GT_FILE = MINI_DIR / "example_wholebody_val.json"
FIELDS = {"body": "keypoints", "foot": "foot_kpts", "face": "face_kpts", "left_hand": "lefthand_kpts",
          "right_hand": "righthand_kpts"}
XT_IOU_TYPES = {"body": "keypoints_body", "foot": "keypoints_foot", "face": "keypoints_face",
                "left_hand": "keypoints_lefthand", "right_hand": "keypoints_righthand",
                "wholebody": "keypoints_wholebody"}
SLICES = {**{name: slice(lo, hi) for name, (lo, hi) in PARTS.items()}, "wholebody": slice(0, NUM_KEYPOINTS)}
TOLERANCE = 1e-4


# ---------------------------------------------------------------- synthetic results built from the ground truth

def _gt_keypoints(ann: dict) -> np.ndarray:
    return np.concatenate([np.asarray(ann[field], dtype=np.float64).reshape(-1, 3) for field in FIELDS.values()])


def _noise_scale(noise: float | dict[str, float]) -> np.ndarray:
    """[133] noise in units of each keypoint's OKS sigma times sqrt(area)."""
    per_part = noise if isinstance(noise, dict) else dict.fromkeys(PARTS, noise)
    return np.concatenate([np.full(hi - lo, per_part[name]) for name, (lo, hi) in PARTS.items()])


def _predict(ann: dict, rng: np.random.Generator, noise: float | dict[str, float]) -> dict:
    """GT keypoints plus Gaussian noise; unlabelled keypoints land somewhere inside the person's box."""
    kpts = _gt_keypoints(ann)
    x, y, w, h = ann["bbox"]
    xy = kpts[:, :2] + rng.normal(size=(NUM_KEYPOINTS, 2)) * (_noise_scale(noise) * SIGMAS
                                                             * np.sqrt(ann["area"]))[:, None]
    unlabelled = kpts[:, 2] <= 0
    xy[unlabelled] = rng.uniform((x, y), (x + w, y + h), size=(int(unlabelled.sum()), 2))
    return to_result_entry(ann["image_id"], xy, rng.uniform(0.05, 1.0, NUM_KEYPOINTS), rng.uniform(0.1, 1.0))


def _perfect(gt: dict, rng: np.random.Generator) -> list[dict]:
    out = []
    for ann in gt["annotations"]:
        kpts = _gt_keypoints(ann)
        out.append(to_result_entry(ann["image_id"], kpts[:, :2], (kpts[:, 2] > 0).astype(float), 1.0))
    return out


def _noisy(noise: float | dict[str, float]) -> Callable[[dict, np.random.Generator], list[dict]]:
    return lambda gt, rng: [_predict(ann, rng, noise) for ann in gt["annotations"]]


def _dropped(gt: dict, rng: np.random.Generator) -> list[dict]:
    return [entry for entry in _noisy(0.8)(gt, rng) if rng.uniform() > 0.3]


def _false_positives(gt: dict, rng: np.random.Generator) -> list[dict]:
    """Shifted copies of real people: some images end up with more than the 20 detections COCO keeps."""
    out = _noisy(0.8)(gt, rng)
    images = [img["id"] for img in gt["images"]]
    for _ in range(40):
        entry = _predict(gt["annotations"][rng.integers(len(gt["annotations"]))], rng, 1.0)
        shift = rng.normal(0, 60, 2)
        for field in FIELDS.values():
            values = np.asarray(entry[field]).reshape(-1, 3)
            values[:, :2] += shift
            entry[field] = values.ravel().tolist()
        entry["image_id"] = int(images[rng.integers(len(images))]) if rng.uniform() < 0.5 else 1000
        out.append(entry)
    return out


def _swapped_hands(gt: dict, rng: np.random.Generator) -> list[dict]:
    out = _noisy(0.5)(gt, rng)
    for entry in out:
        entry["lefthand_kpts"], entry["righthand_kpts"] = entry["righthand_kpts"], entry["lefthand_kpts"]
    return out


def _tied_scores(gt: dict, rng: np.random.Generator) -> list[dict]:
    """Coarse scores and duplicate detections: ranking ties must break in file order, like mergesort."""
    out = _noisy(0.7)(gt, rng) + _noisy(1.5)(gt, rng)
    for entry in out:
        entry["score"] = round(entry["score"], 1)
    return out


def _part_scores_and_missing_parts(gt: dict, rng: np.random.Generator) -> list[dict]:
    """Own ranking scores per part; some parts reported with all-zero keypoint scores (not detected)."""
    out = _noisy({"body": 0.5, "foot": 1.0, "face": 0.6, "left_hand": 1.2, "right_hand": 1.2})(gt, rng)
    for entry in out:
        for key in ("foot_score", "face_score", "lefthand_score", "righthand_score", "wholebody_score"):
            entry[key] = float(rng.uniform())
        for field in ("face_kpts", "lefthand_kpts", "righthand_kpts"):
            if rng.uniform() < 0.3:
                entry[field][2::3] = [0.0] * (len(entry[field]) // 3)
    return out


SCENARIOS: dict[str, Callable[[dict, np.random.Generator], list[dict]]] = {
    "perfect": _perfect,
    "noise_small": _noisy(0.3),
    "noise_medium": _noisy(1.0),
    "noise_large": _noisy(3.0),
    "noise_per_part": _noisy({"body": 0.4, "foot": 2.0, "face": 0.8, "left_hand": 1.5, "right_hand": 3.0}),
    "dropped_persons": _dropped,
    "false_positives": _false_positives,
    "swapped_hands": _swapped_hands,
    "tied_scores": _tied_scores,
    "part_scores_and_missing_parts": _part_scores_and_missing_parts,
}


# ------------------------------------------------------------------------------------------------ references

def _xtcocotools_metrics(gt_file: Path, results: list[dict]) -> dict[str, np.ndarray]:
    """The ten stats per part, run the way mmpose's CocoWholeBodyMetric runs xtcocotools."""
    xt_coco = pytest.importorskip(
        "xtcocotools.coco", reason="xtcocotools 1.14.3 is not installed (it is built from source: see the Makefile)")
    xt_eval = pytest.importorskip("xtcocotools.cocoeval")
    out = {}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coco = xt_coco.COCO(str(gt_file))
        detections = coco.loadRes(copy.deepcopy(results))
        for part, iou_type in XT_IOU_TYPES.items():
            coco_eval = xt_eval.COCOeval(coco, detections, iou_type, SIGMAS[SLICES[part]], use_area=True)
            coco_eval.params.useSegm = None
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
            out[part] = np.asarray(coco_eval.stats, dtype=np.float64)
    return out


def _faster_coco_eval_metrics(gt_file: Path, results: list[dict]) -> dict[str, np.ndarray]:
    """faster-coco-eval only knows plain 'keypoints': give it each part as the keypoints of a COCO file.

    The adapter carries xtcocotools' whole-body rules: `num_keypoints` counts the part's visible points, a
    detection's area is its body-keypoint extent (passed as bbox), detections empty in a part are dropped.
    """
    fce = pytest.importorskip("faster_coco_eval", reason="faster-coco-eval is not installed")
    gt = json.loads(gt_file.read_text())
    out = {}
    for part, part_slice in SLICES.items():
        coco = fce.COCO(_part_ground_truth(gt, part_slice))
        detections = coco.loadRes(_part_results(results, part, part_slice))
        coco_eval = fce.COCOeval_faster(coco, detections, "keypoints", print_function=lambda *_: None,
                                        kpt_oks_sigmas=SIGMAS[part_slice], use_area=True)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        out[part] = np.asarray(coco_eval.stats[:10], dtype=np.float64)
    return out


def _part_ground_truth(gt: dict, part_slice: slice) -> dict:
    gt = copy.deepcopy(gt)
    for ann in gt["annotations"]:
        kpts = _gt_keypoints(ann)[part_slice]
        ann["keypoints"] = kpts.ravel().tolist()
        ann["num_keypoints"] = int(np.count_nonzero(kpts[:, 2] > 0))
    return gt


def _part_results(results: list[dict], part: str, part_slice: slice) -> list[dict]:
    score_key = {"body": "score"}.get(part, part.replace("_", "") + "_score")
    out = []
    for entry in results:
        kpts = _gt_keypoints(entry)
        if not (kpts[part_slice, 2] > 0).any():
            continue
        body = kpts[SLICES["body"], :2]
        low, high = body.min(axis=0), body.max(axis=0)
        out.append({"image_id": entry["image_id"], "category_id": entry["category_id"],
                    "keypoints": kpts[part_slice].ravel().tolist(), "score": entry.get(score_key, entry["score"]),
                    "bbox": [*low.tolist(), *(high - low).tolist()]})
    return out


def _ours(gt_file: Path, results: list[dict]) -> dict[str, np.ndarray]:
    metrics = evaluate(load_ground_truth(gt_file), load_results(results))
    assert list(metrics) == list(PART_NAMES)
    return {part: np.asarray(astuple(m), dtype=np.float64) for part, m in metrics.items()}


def _assert_agree(ours: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    for part in PART_NAMES:
        diff = np.abs(ours[part] - reference[part])
        assert diff.max() <= TOLERANCE, f"{part}: ours {ours[part].round(5)} vs reference {reference[part].round(5)}"


# ------------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def gt_file() -> Path:
    return need(GT_FILE)


@pytest.fixture(scope="module")
def gt_json(gt_file: Path) -> dict:
    return json.loads(gt_file.read_text())


@pytest.fixture(scope="module")
def edited_gt_file(gt_json: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Adds what the mini set lacks: a crowd, a small person, an image without people."""
    gt = copy.deepcopy(gt_json)
    gt["annotations"][3]["iscrowd"] = 1
    gt["annotations"][5]["area"] = 600.0
    gt["images"].append({**gt["images"][0], "id": 424242, "file_name": "empty.jpg"})
    path = tmp_path_factory.mktemp("gt") / "edited_wholebody.json"
    path.write_text(json.dumps(gt))
    return path


def _scenario(name: str, gt: dict, seed: int = 0) -> list[dict]:
    return SCENARIOS[name](gt, np.random.default_rng(seed))


# -------------------------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("name", list(SCENARIOS))
def test_agrees_with_xtcocotools(name: str, gt_file: Path, gt_json: dict) -> None:
    results = _scenario(name, gt_json)
    _assert_agree(_ours(gt_file, results), _xtcocotools_metrics(gt_file, results))


@pytest.mark.parametrize("name", ["noise_medium", "false_positives", "tied_scores"])
def test_agrees_with_xtcocotools_on_crowds_small_people_and_empty_images(
        name: str, edited_gt_file: Path, gt_json: dict) -> None:
    results = _scenario(name, gt_json, seed=1)
    results += [{**entry, "image_id": 424242} for entry in results[:3]]
    _assert_agree(_ours(edited_gt_file, results), _xtcocotools_metrics(edited_gt_file, results))


@pytest.mark.parametrize("name", ["perfect", "noise_per_part", "false_positives", "part_scores_and_missing_parts"])
def test_agrees_with_faster_coco_eval(name: str, gt_file: Path, gt_json: dict) -> None:
    results = _scenario(name, gt_json, seed=2)
    _assert_agree(_ours(gt_file, results), _faster_coco_eval_metrics(gt_file, results))


def test_perfect_predictions_score_one_on_every_part(gt_file: Path, gt_json: dict) -> None:
    metrics = evaluate(load_ground_truth(gt_file), load_results(_scenario("perfect", gt_json)))
    for part, m in metrics.items():
        assert (m.ap, m.ap50, m.ap75, m.ar, m.ar50, m.ar75) == (1.0,) * 6, part


def test_flat_133_keypoints_are_split_into_parts(gt_file: Path, gt_json: dict, tmp_path: Path) -> None:
    results = _scenario("noise_medium", gt_json)
    flat = [{"image_id": e["image_id"], "category_id": 1, "score": e["score"],
             "keypoints": _gt_keypoints(e).ravel().tolist()} for e in results]
    path = tmp_path / "flat.json"
    path.write_text(json.dumps(flat))
    gt = load_ground_truth(gt_file)
    assert evaluate(gt, load_results(path)) == evaluate(gt, load_results(results))


def test_to_result_entry_writes_the_standard_layout() -> None:
    xy = np.arange(NUM_KEYPOINTS * 2, dtype=np.float32).reshape(NUM_KEYPOINTS, 2)
    scores = np.linspace(0, 1, NUM_KEYPOINTS)
    entry = to_result_entry(np.int64(7), xy, scores, np.float32(0.5))
    assert json.loads(json.dumps(entry)) == entry
    assert (entry["image_id"], entry["category_id"], entry["score"]) == (7, 1, 0.5)
    assert np.array_equal(_gt_keypoints(entry), np.column_stack([xy, scores]))
    with pytest.raises(ValueError, match="133"):
        to_result_entry(7, xy[:17], scores, 0.5)


def test_metrics_table_has_a_row_per_part(gt_file: Path, gt_json: dict) -> None:
    table = metrics_table(evaluate(load_ground_truth(gt_file), load_results(_scenario("perfect", gt_json))))
    lines = table.splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert rows[0] == ["part", "AP", "AP50", "AP75", "AR", "AR50"]
    assert [row[0] for row in rows[2:]] == list(PART_NAMES)
    assert len({len(line) for line in lines}) == 1
    assert rows[2][1:] == ["1.000"] * 5


# ----------------------------------------------------------------------------------------------- bad input

def _one_result(gt_json: dict) -> dict:
    return _scenario("perfect", gt_json)[0]


def test_results_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("[{not json")
    with pytest.raises(RtmwEdgeError, match="not valid JSON"):
        load_results(path)


def test_missing_results_file(tmp_path: Path) -> None:
    with pytest.raises(RtmwEdgeError, match="cannot read"):
        load_results(tmp_path / "absent.json")


@pytest.mark.parametrize("results", [[], {"image_id": 1}])
def test_results_that_are_not_a_non_empty_list(results) -> None:
    with pytest.raises(RtmwEdgeError, match="non-empty list"):
        load_results(results)


@pytest.mark.parametrize(("field", "count", "message"), [
    ("face_kpts", 67, "'face_kpts' has 201 values, expected 204"),
    ("keypoints", 16, "'keypoints' has 48 values, expected 51"),
])
def test_wrong_keypoint_count(field: str, count: int, message: str, gt_json: dict) -> None:
    entry = _one_result(gt_json)
    entry[field] = [1.0] * (count * 3)
    with pytest.raises(RtmwEdgeError, match=message):
        load_results([entry])


def test_flat_keypoints_of_the_wrong_length(gt_json: dict) -> None:
    entry = {key: value for key, value in _one_result(gt_json).items() if key not in list(FIELDS.values())[1:]}
    with pytest.raises(RtmwEdgeError, match="'keypoints' has 51 values, expected 399"):
        load_results([entry])


def test_missing_part_field(gt_json: dict) -> None:
    entry = _one_result(gt_json)
    del entry["lefthand_kpts"]
    with pytest.raises(RtmwEdgeError, match="entry 0: missing 'lefthand_kpts'"):
        load_results([entry])


@pytest.mark.parametrize("key", ["score", "image_id"])
def test_missing_field(key: str, gt_json: dict) -> None:
    entry = _one_result(gt_json)
    del entry[key]
    with pytest.raises(RtmwEdgeError, match=f"malformed result entry.*{key}"):
        load_results([entry])


def test_non_finite_values(gt_json: dict) -> None:
    entries = [_one_result(gt_json), _one_result(gt_json)]
    entries[1]["face_kpts"][4] = float("nan")
    with pytest.raises(RtmwEdgeError, match="entry 1 has a value that is not finite"):
        load_results(entries)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("image_id", 123, "1 image id.* not in the ground truth: 123"),
    ("category_id", 2, "1 category id.* not in the ground truth: 2"),
])
def test_ids_absent_from_ground_truth(key: str, value: int, message: str, gt_file: Path, gt_json: dict) -> None:
    entry = {**_one_result(gt_json), key: value}
    with pytest.raises(RtmwEdgeError, match=message):
        evaluate(load_ground_truth(gt_file), load_results([entry]))


def test_ground_truth_that_is_not_coco(tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps([{"image_id": 1}]))
    with pytest.raises(RtmwEdgeError, match="not a COCO annotation file"):
        load_ground_truth(path)


@pytest.mark.parametrize("fields", [["foot_kpts"], list(FIELDS.values())[1:]])
def test_ground_truth_without_whole_body_parts(fields: list[str], gt_json: dict, tmp_path: Path) -> None:
    gt = copy.deepcopy(gt_json)
    for field in fields:
        del gt["annotations"][2][field]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(RtmwEdgeError, match=f"annotation 2: missing '{fields[0]}'"):
        load_ground_truth(path)
