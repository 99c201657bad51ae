"""The accuracy gate: INT8 against FP32 on the same backend and machine, flip test off, same boxes.

With ground truth, COCO-WholeBody AP per part for both; without, FP32's own predictions are the reference
that INT8 is scored against. The verdict compares the drops with the budget; on untrained weights every
number is computed and shown, and the verdict is "not judged".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.evaluation.coco_wholebody import person_boxes, read_json

WHOLEBODY = "wholebody"


@dataclass(frozen=True)
class Budget:
    """Largest AP drop (points) INT8 may show: on the whole body, and on any one part."""

    wholebody: float = 1.0
    part: float = 2.0

    def __post_init__(self) -> None:
        if self.wholebody < 0 or self.part < 0:
            raise RtmwEdgeError(f"--max-drop must not be negative (got {self.wholebody}, {self.part})")


@dataclass(frozen=True)
class Verdict:
    passed: bool | None  # None: not judged
    drops: dict[str, float]
    reason: str

    @property
    def label(self) -> str:
        return {True: "PASS", False: "FAIL", None: "not judged"}[self.passed]


def judge(fp32_ap: dict[str, float], int8_ap: dict[str, float], budget: Budget, trained: bool) -> Verdict:
    """Drops in AP points per part, and whether they fit the budget."""
    drops = {part: round(100.0 * (fp32_ap[part] - int8_ap[part]), 3) for part in fp32_ap}
    over = [p for p, d in drops.items() if d > (budget.wholebody if p == WHOLEBODY else budget.part)]
    if not trained:
        return Verdict(None, drops, "untrained weights: every figure is shown, none is judged")
    if over:
        worst = max(over, key=lambda p: drops[p])
        return Verdict(False, drops, f"{worst} drops {drops[worst]:.2f} AP (budget {_limit(worst, budget):g})")
    return Verdict(True, drops, "within budget")


def _limit(part: str, budget: Budget) -> float:
    return budget.wholebody if part == WHOLEBODY else budget.part


# ------------------------------------------------------------------------------------- with ground truth

@dataclass(frozen=True)
class GroundTruthSet:
    """A COCO-WholeBody JSON (read once) and the folder of its images; persons come with their annotated boxes."""

    json_path: Path
    images_dir: Path
    data: dict = field(repr=False, compare=False)

    @classmethod
    def open(cls, json_path: str | Path, images_dir: str | Path | None = None) -> GroundTruthSet:
        json_path = Path(json_path)
        if not json_path.is_file():
            raise RtmwEdgeError(f"ground truth {json_path} does not exist")
        images_dir = Path(images_dir) if images_dir else json_path.parent
        data = read_json(json_path)
        if not isinstance(data, dict) or not {"images", "annotations"} <= set(data):
            raise RtmwEdgeError(f"{json_path} is not a COCO annotation file (no 'images'/'annotations')")
        missing = [i["file_name"] for i in data["images"] if not (images_dir / i["file_name"]).is_file()]
        if missing:
            raise RtmwEdgeError(f"{len(missing)} image(s) of {json_path.name} are not in {images_dir} (first: "
                                f"{missing[0]}); pass the folder that holds them")
        return cls(json_path, images_dir, data)

    def images(self) -> list[tuple[int, Path, np.ndarray]]:
        """(image id, path, [K,4] xyxy person boxes) per image."""
        boxes = person_boxes(self.data)
        none = np.zeros((0, 4), np.float32)
        return [(i["id"], self.images_dir / i["file_name"], boxes.get(i["id"], none)) for i in self.data["images"]]


def pose_ap(predictor, dataset: GroundTruthSet, progress: bool = False) -> dict[str, float]:
    """Whole-body and per-part AP of one pose artifact on the ground-truth boxes (flip test off)."""
    from rtmw_edge.evaluation import evaluate, load_ground_truth, load_results, to_result_entry

    results = []
    for image_id, path, boxes in tqdm(dataset.images(), desc="evaluate", disable=not progress, leave=False):
        image = cv2.imread(str(path))
        for person in predictor.predict(image, boxes):
            results.append(to_result_entry(image_id, person.keypoints, person.scores, person.score))
    if not results:
        raise RtmwEdgeError(f"no person could be evaluated in {dataset.json_path}")
    metrics = evaluate(load_ground_truth(dataset.json_path), load_results(results))
    return {part: m.ap for part, m in metrics.items()}


def detector_ap(detector, dataset: GroundTruthSet, progress: bool = False) -> float:
    """Person-box AP (IoU 0.50:0.95) of a detector on the ground truth's images."""
    detections = []
    for image_id, path, _ in tqdm(dataset.images(), desc="evaluate detector", disable=not progress, leave=False):
        for x1, y1, x2, y2, score in detector.detect(cv2.imread(str(path))):
            detections.append({"image_id": image_id, "category_id": 1, "score": float(score),
                               "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]})
    return box_ap(dataset.data, detections)


def box_ap(coco: dict, detections: list[dict]) -> float:
    """COCO box AP through faster-coco-eval (the same numbers as pycocotools)."""
    from rtmw_edge.errors import require

    fce = require("faster_coco_eval", "eval")
    if not detections:
        return 0.0
    gt = fce.COCO(_boxes_only(coco))
    evaluator = fce.COCOeval_faster(gt, gt.loadRes(detections), iouType="bbox", print_function=lambda *a: None)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return float(evaluator.stats[0])


def _boxes_only(coco: dict) -> dict:
    annotations = [{"id": a["id"], "image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"],
                    "area": a.get("area", a["bbox"][2] * a["bbox"][3]), "iscrowd": a.get("iscrowd", 0)}
                   for a in coco["annotations"]]
    return {"images": coco["images"], "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}]}
