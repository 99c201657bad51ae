"""The accuracy gate: INT8 against FP32 on the same backend and machine, flip test off, same boxes.

With ground truth, COCO-WholeBody AP per part for both; without, FP32's own predictions are the reference
that INT8 is scored against. The verdict compares the drops with the budget. Seeded weights are never judged
against ground truth; stress weights (which fail INT8 as trained ones do) are judged on their agreement with
FP32, untrained ones not at all: every number is computed and shown, and the verdict is "not judged".
"""

from __future__ import annotations

from dataclasses import dataclass

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.model.kinds import AGREEMENT_JUDGED_KINDS, is_trained

WHOLEBODY = "wholebody"


@dataclass(frozen=True)
class Budget:
    """Largest AP drop (points) INT8 may show: on the whole body (or a detector's box AP), and on any one part.
    The recipe's [gate] sets it; `--max-drop` overrides it."""

    wholebody: float
    part: float

    def __post_init__(self) -> None:
        if self.wholebody < 0 or self.part < 0:
            raise RtmwEdgeError(f"the AP budget must not be negative (got {self.wholebody}, {self.part})")

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
