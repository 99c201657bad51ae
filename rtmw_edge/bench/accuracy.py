"""The accuracy a bench row shows: AP measured on --eval, else what the artifact's quantization record says; the
one place bench reads those records."""

from __future__ import annotations

from collections.abc import Sequence

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
    precision."""
    record = _record_beside(artifact)
    meta = artifact.meta
    if record is None or record.backend != meta.backend or record.model != meta.model:
        return None
    parts = record.accuracy_of(meta.precision)
    if not parts:
        return None
    drift = record.accuracy.drift_3d_mm
    drift = {"fp32": dict.fromkeys(drift, 0.0), "int8": drift}.get(meta.precision) if drift else None
    return Accuracy(record.evaluation.metric, float(parts["wholebody"]), {k: float(v) for k, v in parts.items()},
                    f"quantization record: {record.evaluation.description}", drift)


def records_beside(artifacts: Sequence[Artifact]) -> list[QuantizationRecord]:
    """The quantization records of the result folders these artifacts lie in, each once."""
    found: dict[str, QuantizationRecord] = {}
    for artifact in artifacts:
        record = _record_beside(artifact)
        if record is not None:
            found.setdefault(str(artifact.folder.parent.resolve()), record)
    return list(found.values())


def _record_beside(artifact: Artifact) -> QuantizationRecord | None:
    path = artifact.folder.parent / RECORD_FILE
    if not path.is_file():
        return None
    try:
        return QuantizationRecord.read(path)
    except RtmwEdgeError:  # not one of ours, or damaged: the row shows no accuracy rather than failing
        return None
