"""Accuracy evaluation: COCO-WholeBody keypoint AP/AR without xtcocotools."""

from rtmw_edge.evaluation.coco_wholebody import (
    PART_NAMES,
    GroundTruth,
    PartMetrics,
    Results,
    evaluate,
    load_ground_truth,
    load_results,
    metrics_table,
    to_result_entry,
)

__all__ = [
    "PART_NAMES",
    "GroundTruth",
    "PartMetrics",
    "Results",
    "evaluate",
    "load_ground_truth",
    "load_results",
    "metrics_table",
    "to_result_entry",
]
