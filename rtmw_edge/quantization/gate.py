"""The accuracy gate: INT8 against FP32 on the same backend and machine, flip test off, same boxes.

With ground truth, COCO-WholeBody AP per part for both; without, FP32's own predictions are the reference
that INT8 is scored against. The verdict compares the drops with the budget. Seeded weights are never judged
against ground truth; stress weights (which fail INT8 as trained ones do) are judged on their agreement with
FP32, untrained ones not at all: every number is computed and shown, and the verdict is "not judged". A 3D model
is also held to a 3D budget: how far INT8's camera-space keypoints drift from FP32's after aligning their roots
(millimetres, per part).
"""

from __future__ import annotations

from dataclasses import dataclass

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.model.kinds import AGREEMENT_JUDGED_KINDS, is_trained

WHOLEBODY = "wholebody"


@dataclass(frozen=True)
class Budget:
    """Largest AP drop (points) INT8 may show: on the whole body (or a detector's box AP), and on any one part.
    The recipe's [gate] sets it; `--max-drop` overrides it. A 3D model's keypoints may also drift at most
    `wholebody_mm` on the whole body and `part_mm` on any part (root-aligned, INT8 against FP32)."""

    wholebody: float
    part: float
    wholebody_mm: float = 15.0
    part_mm: float = 25.0

    def __post_init__(self) -> None:
        if self.wholebody < 0 or self.part < 0:
            raise RtmwEdgeError(f"the AP budget must not be negative (got {self.wholebody}, {self.part})")
        if self.wholebody_mm < 0 or self.part_mm < 0:
            raise RtmwEdgeError(f"the 3D budget must not be negative (got {self.wholebody_mm}, {self.part_mm} mm)")

    def limit(self, part: str, headline: str = WHOLEBODY) -> float:
        return self.wholebody if part == headline else self.part


@dataclass(frozen=True)
class Verdict:
    passed: bool | None  # None: not judged
    drops: dict[str, float]
    reason: str

    @property
    def label(self) -> str:
        return {True: "PASS", False: "FAIL", None: "not judged"}[self.passed]


def unjudged_reason(weights_kind: str, metric: str) -> str | None:
    """Why the gate does not judge INT8 of these weights on this metric ('ap' or 'agreement'); None: it does."""
    if is_trained(weights_kind):
        return None
    if weights_kind in AGREEMENT_JUDGED_KINDS:
        return None if metric == "agreement" else (f"{weights_kind} weights: judged on agreement with FP32, "
                                                   "not against ground truth (leave out --eval); every figure is shown")
    return f"{weights_kind} weights: every figure is shown, none is judged"


def judge(fp32_ap: dict[str, float], int8_ap: dict[str, float], budget: Budget, why_not: str | None = None,
          headline: str = WHOLEBODY) -> Verdict:
    """Drops in AP points per part, and whether they fit the budget (`headline` is held to the whole-body one).

    `why_not` (see `unjudged_reason`): the figures are only shown, for this reason."""
    drops = {part: round(100.0 * (fp32_ap[part] - int8_ap[part]), 3) for part in fp32_ap}
    if why_not is not None:
        return Verdict(None, drops, why_not)
    over = over_budget(drops, budget, headline)
    if over:
        worst = max(over, key=lambda p: drops[p])
        return Verdict(False, drops, f"{worst} drops {drops[worst]:.2f} AP (budget {budget.limit(worst, headline):g})")
    return Verdict(True, drops, "within budget")


def over_budget(drops: dict[str, float], budget: Budget, headline: str = WHOLEBODY) -> list[str]:
    """The parts whose drop exceeds the budget (also where untrained weights leave the verdict unjudged)."""
    return [part for part, drop in drops.items() if drop > budget.limit(part, headline)]


def judge_drift(drift_mm: dict[str, float], budget: Budget, why_not: str | None = None) -> Verdict:
    """A 3D model's root-aligned keypoint drift (mm per part, `drops` of the verdict) against the 3D budget;
    `why_not` as for `judge`."""
    if why_not is not None:
        return Verdict(None, drift_mm, why_not)
    over = over_drift(drift_mm, budget)
    if over:
        worst = max(over, key=lambda p: drift_mm[p])
        limit = budget.wholebody_mm if worst == WHOLEBODY else budget.part_mm
        return Verdict(False, drift_mm, f"{worst} drifts {drift_mm[worst]:.1f} mm in 3D (budget {limit:g} mm)")
    return Verdict(True, drift_mm, "within budget")


def over_drift(drift_mm: dict[str, float], budget: Budget) -> list[str]:
    return [p for p, mm in drift_mm.items() if mm > (budget.wholebody_mm if p == WHOLEBODY else budget.part_mm)]


def combined(flat: Verdict, depth: Verdict) -> Verdict:
    """One verdict of the 2D and the 3D gates: failed if either failed; the drops stay the 2D ones."""
    if flat.passed is False or depth.passed is False:
        passed: bool | None = False
    else:
        passed = None if None in (flat.passed, depth.passed) else True
    reason = flat.reason if flat.reason == depth.reason else f"2D: {flat.reason}; 3D: {depth.reason}"
    return Verdict(passed, flat.drops, reason)
