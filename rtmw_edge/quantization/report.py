"""The one table `rtmw-edge quantize` prints, and the short report.md beside quantization.json."""

from __future__ import annotations

from rtmw_edge.model.kinds import AGREEMENT_JUDGED_KINDS, weights_mark
from rtmw_edge.quantization.recipe import Sensitivity
from rtmw_edge.quantization.record import QuantizationRecord
from rtmw_edge.table import format_table

PARTS = ("wholebody", "body", "foot", "face", "left_hand", "right_hand")
PART_TITLES = ("AP whole", "body", "foot", "face", "l-hand", "r-hand")


def render_table(record: QuantizationRecord) -> str:
    """One row per artifact: precision, size, AP per part (or agreement with FP32), latency, gate."""
    mark = weights_mark(record.weights["kind"])
    pose = [(p, getattr(record.artifacts, p), getattr(record.accuracy, p), getattr(record.latency_ms, p),
             "reference" if p == "fp32" else record.verdicts["pose"].label) for p in ("fp32", "int8")]
    pose += [(f.precision if f.computes == f.precision else f"{f.precision} (computes {f.computes})", f.artifact,
              f.accuracy, f.latency_ms, f.verdict.label) for f in record.floats]
    drift = record.accuracy.drift_3d_mm  # a 3D model's: one more column, INT8's keypoints against FP32's
    extra = {"fp32": ["0.0"], "int8": [f"{drift['wholebody']:.1f}"]} if drift else {}
    rows = [[f"{record.model}{mark}", record.backend, precision, f"{facts.size_mb:.1f}",
             *(f"{100 * ap[p]:.1f}" for p in PARTS), *extra.get(precision, ["-"] if drift else []),
             f"{latency:.1f}", gate]
            for precision, facts, ap, latency, gate in pose]
    detector = record.detector
    if detector:
        for precision in ("fp32", "int8"):
            facts = getattr(detector.artifacts, precision)
            box_ap = "-" if detector.box_ap is None else f"{100 * getattr(detector.box_ap, precision):.1f}"
            gate = "reference" if precision == "fp32" else record.verdicts["detector"].label
            latency = getattr(detector.latency_ms, precision)
            rows.append([f"detector {facts.path.split('/')[0]}", record.backend, precision, f"{facts.size_mb:.1f}",
                         f"box AP {box_ap}", "", "", "", "", "", *([""] if drift else []), f"{latency:.1f}", gate])
    header = ["artifact", "backend", "precision", "size MB", *PART_TITLES, *(["3D drift mm"] if drift else []),
              "latency ms", "gate"]
    return format_table(header, rows)


def render_report(record: QuantizationRecord, table: str) -> str:
    pose = record.verdicts["pose"]
    calibration = record.calibration
    metric = ("COCO-WholeBody AP x100 against ground truth" if record.evaluation.metric == "ap" else
              "agreement with FP32's own predictions (OKS AP x100 with FP32 as ground truth: FP32 scores 100)")
    floats = [f"{f.precision}: **{f.verdict.label}** — {f.verdict.reason}" for f in record.floats]
    floats += [f"{precision}: not made — {reason}" for precision, reason in record.skipped_precisions.items()]
    lines = [
        f"# INT8 {record.model} on {record.backend}",
        "",
        f"Weights: {record.weights['kind']}{_weights_note(record)}",
        f"Evaluation: {record.evaluation.description}",
        f"Calibration: {calibration.size} inputs, sha256 {calibration.sha256[:16]}… ({calibration.description})",
        f"Budget: whole body {record.budget.wholebody} AP, any part {record.budget.part} AP.",
        f"Gate: **{pose.label}** — {pose.reason}.",
        *_drift_lines(record),
        f"Kept in float: {', '.join(record.kept_float) or 'nothing'}; reverted by the gate: "
        f"{', '.join(record.reverted_to_float) or 'nothing'}"
        + (f"; layers the backend's accuracy search put back to float: {', '.join(record.reverted_layers)}."
           if record.reverted_layers else "."),
        f"Machine: {record.machine.cpu} (VNNI: {'yes' if record.machine.vnni else 'no'}); "
        f"latency is the median of interleaved batch-1 runs.",
        "Float precisions beside FP32 and INT8 (no calibration; scored by the same gate; the run's verdict is "
        "INT8's): " + ("; ".join(floats) or "none asked for") + ".",
        f"Int8 kernels that really run: {_kernels(record.int8_kernels)}.",
        f"Recommended here: **{record.recommended.precision.upper()}** — {record.recommended.reason}.",
        "",
        f"AP columns: {metric}.",
        "",
        table,
        "",
    ]
    if record.detector:
        verdict = record.verdicts["detector"]
        detector = record.detector
        lines += [f"Detector gate: **{verdict.label}** — {verdict.reason}; layers reverted to float by the "
                  f"search: {', '.join(detector.reverted_to_float) or 'none'}; int8 kernels that really run: "
                  f"{_kernels(detector.int8_kernels)}.",
                  f"Detector recommended here: **{detector.recommended.precision.upper()}** — "
                  f"{detector.recommended.reason}.", ""]
    if record.sensitivity:
        measured = sorted(record.sensitivity.items(), key=lambda kv: kv[1].ap)
        rows = [[group, f"{m.ap:.1f}", "-" if m.snr_db is None else f"{m.snr_db:.1f}"] for group, m in measured]
        lines += ["## Sensitivity: one layer group in int8, the rest float (most sensitive first)", "",
                  format_table(["group", "AP whole x100", "logit SNR dB"], rows), "",
                  "As a recipe's table (the gate reverts the most sensitive first):", "", "```toml",
                  "[sensitivity]", *(_sensitivity_line(group, m) for group, m in measured), "```", ""]
    return "\n".join(lines)


def _weights_note(record: QuantizationRecord) -> str:
    kind = record.weights["kind"]
    if record.trained:
        return ""
    if kind in AGREEMENT_JUDGED_KINDS:
        return (f" — {kind.upper()} PROXY (seeded, never trained): never judged against published accuracy; the "
                "gate judges INT8's agreement with its own FP32, because on it INT8 fails as on trained weights.")
    return f" — {kind.upper()}: accuracy is reported, not judged."


def _kernels(kernels: dict[str, int] | None) -> str:
    if kernels is None:
        return "not counted by this backend"
    return ", ".join(f"{count} {op}" for op, count in kernels.items()) or "none (INT8 computes in float)"


def _drift_lines(record: QuantizationRecord) -> list[str]:
    """A 3D model's budget and root-aligned drift per part; nothing for a 2D model."""
    drift = record.accuracy.drift_3d_mm
    if not drift:
        return []
    parts = ", ".join(f"{part} {mm:.1f}" for part, mm in drift.items())
    return [f"3D budget: root-aligned drift of INT8's camera-space keypoints from FP32's (held-out crops), whole "
            f"body {record.budget.wholebody_mm} mm, any part {record.budget.part_mm} mm; measured (mm): {parts}."]


def _sensitivity_line(group: str, measured: Sensitivity) -> str:
    snr = "" if measured.snr_db is None else f", snr_db = {round(float(measured.snr_db), 1)}"
    return f'"{group}" = {{ ap = {measured.ap}{snr} }}'
