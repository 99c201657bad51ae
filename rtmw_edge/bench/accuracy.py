"""The accuracy a bench row shows: AP measured on --eval, else what the artifact's quantization record says."""

from __future__ import annotations

from rtmw_edge.artifact import Artifact
from rtmw_edge.bench.results import Accuracy
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.evaluation.ground_truth import pose_ap
from rtmw_edge.predictor import Predictor
from rtmw_edge.quantization.record import RECORD_FILE, QuantizationRecord

NOT_MEASURED = Accuracy(metric=None, wholebody=None, parts={}, source="not measured (no --eval, no record)")


def artifact_accuracy(artifact: Artifact, predictor: Predictor, evaluation, progress: bool) -> Accuracy:
    """AP on `evaluation` (a GroundTruthSet) when given, else the quantization record's figures, else none."""
    if evaluation is not None:
        parts = {part: float(ap) for part, ap in pose_ap(predictor, evaluation, progress).items()}
        return Accuracy("ap", parts["wholebody"], parts,
                        f"COCO-WholeBody AP on {evaluation.json_path.name} (ground-truth boxes, no flip)")
    return recorded_accuracy(artifact) or NOT_MEASURED


def recorded_accuracy(artifact: Artifact) -> Accuracy | None:
    """What the quantization.json beside the artifact's folder measured, when it speaks of this model, backend and
    precision; the one place bench reads that record."""
    path = artifact.folder.parent / RECORD_FILE
    if not path.is_file():
        return None
    try:
        record = QuantizationRecord.read(path)
    except RtmwEdgeError:  # not one of ours, or damaged: the row shows no accuracy rather than failing
        return None
    meta = artifact.meta
    parts = getattr(record.accuracy, meta.precision, None)
    if record.backend != meta.backend or record.model != meta.model or not parts:
        return None
    return Accuracy(record.evaluation.metric, float(parts["wholebody"]), {k: float(v) for k, v in parts.items()},
                    f"quantization record: {record.evaluation.description}")
