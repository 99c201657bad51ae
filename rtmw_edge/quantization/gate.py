"""The accuracy gate: INT8 against FP32 on the same backend and machine, flip test off, same boxes.

With ground truth, COCO-WholeBody AP per part for both; without, FP32's own predictions are the reference
that INT8 is scored against. The verdict compares the drops with the budget; on untrained weights every
number is computed and shown, and the verdict is "not judged".
"""

from __future__ import annotations

from dataclasses import dataclass

from rtmw_edge.errors import RtmwEdgeError

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


def judge(fp32_ap: dict[str, float], int8_ap: dict[str, float], budget: Budget, trained: bool,
          headline: str = WHOLEBODY) -> Verdict:
    """Drops in AP points per part, and whether they fit the budget (`headline` is held to the whole-body one)."""
    drops = {part: round(100.0 * (fp32_ap[part] - int8_ap[part]), 3) for part in fp32_ap}
    over = over_budget(drops, budget, headline)
    if not trained:
        return Verdict(None, drops, "untrained weights: every figure is shown, none is judged")
    if over:
        worst = max(over, key=lambda p: drops[p])
        return Verdict(False, drops, f"{worst} drops {drops[worst]:.2f} AP (budget {budget.limit(worst, headline):g})")
    return Verdict(True, drops, "within budget")


def over_budget(drops: dict[str, float], budget: Budget, headline: str = WHOLEBODY) -> list[str]:
    """The parts whose drop exceeds the budget (also where untrained weights leave the verdict unjudged)."""
    return [part for part, drop in drops.items() if drop > budget.limit(part, headline)]
