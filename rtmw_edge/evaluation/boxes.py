"""Person-box AP of a detector on a ground-truth set (COCO bbox AP through faster-coco-eval)."""

from __future__ import annotations

import cv2
from tqdm import tqdm

from rtmw_edge.errors import require
from rtmw_edge.evaluation.ground_truth import GroundTruthSet


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
