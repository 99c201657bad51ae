"""A COCO-WholeBody ground-truth set with its images, and the AP of a pose predictor on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.evaluation.coco_wholebody import (
    evaluate,
    load_ground_truth,
    load_results,
    person_boxes,
    read_json,
    to_result_entry,
)


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
    """Whole-body and per-part AP of one pose predictor on the ground-truth boxes (flip test as it is set)."""
    results = []
    for image_id, path, boxes in tqdm(dataset.images(), desc="evaluate", disable=not progress, leave=False):
        image = cv2.imread(str(path))
        for person in predictor.predict(image, boxes):
            results.append(to_result_entry(image_id, person.keypoints, person.scores, person.score))
    if not results:
        raise RtmwEdgeError(f"no person could be evaluated in {dataset.json_path}")
    metrics = evaluate(load_ground_truth(dataset.json_path), load_results(results))
    return {part: m.ap for part, m in metrics.items()}
