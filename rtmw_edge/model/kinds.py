"""Kinds of weights, and what each means for judging INT8 (no torch needed: records and reports read these).

Seeded weights were never trained, so nothing made from them is judged against published or ground-truth
accuracy. Stress weights (stress.py) fail INT8 the way trained weights do, so a gate judges INT8's agreement with
their own FP32; untrained weights are only reported.
"""

from __future__ import annotations

SEEDED_KINDS = ("untrained", "stress")
AGREEMENT_JUDGED_KINDS = ("stress",)


def is_trained(kind: str) -> bool:
    return kind not in SEEDED_KINDS


def weights_mark(kind: str) -> str:
    """' (untrained)', ' (stress)', or nothing for trained weights: what every table and label appends."""
    return "" if is_trained(kind) else f" ({kind})"
