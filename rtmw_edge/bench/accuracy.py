"""The accuracy a bench row shows: AP measured on --eval, else what the artifact's quantization record says."""

from __future__ import annotations

import json

from rtmw_edge.artifact import Artifact
from rtmw_edge.bench.results import METRICS, Accuracy
from rtmw_edge.predictor import Predictor

QUANTIZATION_RECORD = "quantization.json"  # written by `rtmw-edge quantize` beside the artifact folders
NOT_MEASURED = Accuracy(metric=None, wholebody=None, parts={}, source="not measured (no --eval, no record)")


def artifact_accuracy(artifact: Artifact, predictor: Predictor, evaluation, progress: bool) -> Accuracy:
    """AP on `evaluation` (a GroundTruthSet) when given, else the quantization record's figures, else none."""
    if evaluation is not None:
        from rtmw_edge.quantization.gate import pose_ap

        parts = {part: float(ap) for part, ap in pose_ap(predictor, evaluation, progress).items()}
        return Accuracy("ap", parts["wholebody"], parts,
                        f"COCO-WholeBody AP on {evaluation.json_path.name} (ground-truth boxes, no flip)")
    return recorded_accuracy(artifact) or NOT_MEASURED


def recorded_accuracy(artifact: Artifact) -> Accuracy | None:
    """What the quantization.json beside the artifact's folder measured, when it speaks of this model, backend and
    precision; the one place bench reads that record."""
    try:
        record = json.loads((artifact.folder.parent / QUANTIZATION_RECORD).read_text())
        meta = artifact.meta
        if record["backend"] != meta.backend or record["model"] != meta.model:
            return None
        parts = {part: float(ap) for part, ap in record["accuracy"][meta.precision].items()}
        metric = record.get("metric") or _metric_of_record_without_metric_field(record)
        wholebody = parts["wholebody"]
        source = f"quantization record: {record['evaluation']}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # no record, or not one of ours
        return None
    return Accuracy(metric, wholebody, parts, source) if metric in METRICS else None


def _metric_of_record_without_metric_field(record: dict) -> str:
    """Records written before quantization.json had its "metric" field: only agreement scoring added an NME."""
    return "agreement" if "nme" in record["accuracy"] else "ap"
