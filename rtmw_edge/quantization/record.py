"""quantization.json as typed data: what `rtmw-edge quantize` measured and decided, written and read here only.

Accuracy figures are fractions (AP 0..1); with ground truth they are COCO-WholeBody AP (`metric` "ap"), without
it INT8's agreement with FP32's own predictions (`metric` "agreement", FP32 scores 1 by definition). The float
precisions made beside them (bf16, fp16) are scored and judged the same way, one `FloatResult` each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.fileio import atomic_file
from rtmw_edge.quantization.gate import Budget, Verdict, over_budget, over_drift
from rtmw_edge.quantization.recipe import Sensitivity
from rtmw_edge.typed import Mismatch, from_plain, to_plain

RECORD_FILE = "quantization.json"
FORMAT_VERSION = 2


@dataclass(frozen=True)
class ArtifactFacts:
    path: str  # '<artifact folder>/<main file>', relative to the result folder
    precision: str
    size_mb: float
    trained: bool


@dataclass(frozen=True)
class Artifacts:
    fp32: ArtifactFacts
    int8: ArtifactFacts


@dataclass(frozen=True)
class Pair:
    """One figure of the FP32 artifact and of the INT8 one (latency: ms, the median of interleaved batch-1 runs
    on this machine; box AP: 0..1)."""

    fp32: float
    int8: float


@dataclass(frozen=True)
class Recommendation:
    """Which artifact to deploy on the machine that quantized: the fastest here of FP32 and the precisions that
    passed the gate (or were not judged) and are faster than FP32 beyond the timing noise (the paired bootstrap
    interval of their speed-up lies above 1); a slower INT8, or one as fast, is not shipped as the better one."""

    precision: str
    reason: str

    @classmethod
    def of(cls, latency_ms: dict[str, float], verdicts: dict[str, Verdict],
           speedups: dict[str, tuple[float, float, float]]) -> Recommendation:
        """By precision: `latency_ms` (medians), `verdicts` and `speedups` over FP32 (ratio, low, high; FP32 is
        the reference: it needs neither)."""
        allowed = ["fp32", *(p for p, v in verdicts.items() if v.passed is not False)]
        faster = ["fp32", *(p for p in allowed[1:] if speedups[p][1] > 1.0)]
        best = min(faster, key=lambda p: latency_ms[p])
        timing = ", ".join(f"{p} {ms:g} ms" for p, ms in latency_ms.items())
        if "int8" not in allowed:
            return cls(best, f"INT8 failed the gate; {best.upper()} is the fastest left here ({timing})")
        if best != "int8":
            ratio, low, high = speedups["int8"]
            return cls(best, f"INT8 is not faster than {best.upper()} on this machine beyond the timing noise "
                             f"(FP32/INT8 latency {ratio:.2f}x, 95% interval {low:.2f}-{high:.2f}: {timing})")
        return cls("int8", f"INT8 is the fastest here ({timing})")


@dataclass(frozen=True)
class CalibrationFacts:
    sha256: str
    size: int
    seed: int
    description: str
    sources: list[str]  # where each input came from


@dataclass(frozen=True)
class Evaluation:
    metric: Literal["ap", "agreement"]
    description: str


@dataclass(frozen=True)
class Accuracy:
    """Per part (wholebody, body, foot, face, left_hand, right_hand); the extra figures come with agreement."""

    fp32: dict[str, float]
    int8: dict[str, float]
    nme: dict[str, float] | None = None  # normalised keypoint error per part
    logit_snr_db: float | None = None
    broken: str | None = None  # why INT8's outputs scored 0 (non-finite or all zero)
    drift_3d_mm: dict[str, float] | None = None  # 3D models: root-aligned keypoint drift from FP32, mm per part


@dataclass(frozen=True)
class Attempt:
    """One INT8 candidate the gate judged."""

    kept_float: list[str]  # layer groups (pose) or layers (detector) left in float
    int8: dict[str, float]  # its accuracy: per part (pose), or {"box": box AP} (detector)
    verdict: Verdict
    search: str  # what chose kept_float: "groups", "backend accuracy control", "layers", or "none"
    reverted_layers: list[str] = field(default_factory=list)  # layers the backend's own search put back to float


@dataclass(frozen=True)
class FloatResult:
    """A float precision made beside FP32 and INT8 (bf16, fp16): the FP32 network in a narrower arithmetic, with
    no calibration, verified like an export, then scored and judged as INT8 is (its verdict is shown, the run's
    pass or fail stays INT8's)."""

    precision: str
    computes: str  # the arithmetic it runs in: "fp32" where only its stored weights are narrower
    artifact: ArtifactFacts
    accuracy: dict[str, float]  # per part, as Accuracy's
    logit_snr_db: float | None
    latency_ms: float
    verdict: Verdict


@dataclass(frozen=True)
class Measured:
    """What a precision's row says for choosing one: its latency on the quantizing machine and whether its
    drops fit the budget (computed on untrained weights too, where the verdict itself is not judged)."""

    latency_ms: float
    within_budget: bool


@dataclass(frozen=True)
class DetectorRecord:
    """The person detector of --detector, quantized like the pose model and judged on box AP."""

    model: str
    artifacts: Artifacts
    calibration: CalibrationFacts
    quantizer: dict[str, Any]
    box_ap: Pair | None  # None: not judged (no ground truth)
    reverted_to_float: list[str]
    attempts: list[Attempt]
    latency_ms: Pair
    recommended: Recommendation
    int8_kernels: dict[str, int] | None = None  # int8 kernels the runtime really runs, by op (None: not counted)


@dataclass(frozen=True)
class Machine:
    cpu: str
    vnni: bool
    flags: list[str]  # the instruction sets that decide INT8 speed


@dataclass(frozen=True)
class QuantizationRecord:
    """Everything one `quantize` run decided and measured: enough to trust, compare or redo it."""

    model: str
    backend: str
    trained: bool
    weights: dict[str, Any]
    recipe: dict[str, Any]  # the recipe as TOML tables, defaults and overrides merged
    calibration: CalibrationFacts
    evaluation: Evaluation
    budget: Budget
    artifacts: Artifacts
    accuracy: Accuracy
    kept_float: list[str]
    reverted_to_float: list[str]  # groups the gate put back to float beyond the recipe's
    reverted_layers: list[str]
    attempts: list[Attempt]
    latency_ms: Pair
    sensitivity: dict[str, Sensitivity] | None
    verdicts: dict[str, Verdict]  # "pose" (2D and 3D together), "pose_3d" for a 3D model, "detector" with --detector
    machine: Machine
    tools: dict[str, str]
    recommended: Recommendation
    int8_kernels: dict[str, int] | None = None  # int8 kernels the runtime really runs, by op (None: not counted)
    detector: DetectorRecord | None = None
    floats: list[FloatResult] = field(default_factory=list)
    skipped_precisions: dict[str, str] = field(default_factory=dict)  # precision -> why none was made here
    format_version: int = FORMAT_VERSION

    @property
    def passed(self) -> bool:
        """False only when a judged gate failed (untrained weights are reported, not judged)."""
        return all(v.passed is not False for v in self.verdicts.values())

    def accuracy_of(self, precision: str) -> dict[str, float] | None:
        """Accuracy per part of the artifact in `precision`, None where the record made none."""
        if precision in ("fp32", "int8"):
            return getattr(self.accuracy, precision)
        return next((f.accuracy for f in self.floats if f.precision == precision), None)

    def measured(self) -> dict[str, Measured]:
        """Each precision made, with its latency and whether it fits the budget (FP32 does by definition)."""
        depth = self.verdicts.get("pose_3d")
        fits = not over_budget(self.verdicts["pose"].drops, self.budget) and not (
            depth and over_drift(depth.drops, self.budget))
        found = {"fp32": Measured(self.latency_ms.fp32, True), "int8": Measured(self.latency_ms.int8, fits)}
        for row in self.floats:
            found[row.precision] = Measured(row.latency_ms, not over_budget(row.verdict.drops, self.budget))
        return found

    def write(self, path: str | Path, overwrite: bool = False) -> None:
        with atomic_file(path, overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(to_plain(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> QuantizationRecord:
        """The record in `path`; a missing, damaged or foreign file is one RtmwEdgeError."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise RtmwEdgeError(f"quantization record {path} does not exist") from exc
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RtmwEdgeError(f"{path} is not a quantization record (not readable JSON: {exc})") from exc
        if not isinstance(data, dict) or "verdicts" not in data or "accuracy" not in data:
            raise RtmwEdgeError(f"{path} is not a quantization record (no 'accuracy' and 'verdicts')")
        if data.get("format_version") != FORMAT_VERSION:
            raise RtmwEdgeError(f"{path} is a quantization record of format {data.get('format_version')!r}; this "
                                f"rtmw-edge reads format {FORMAT_VERSION}: quantize again")
        try:
            return from_plain(cls, data)
        except Mismatch as exc:
            raise RtmwEdgeError(f"{path} is a damaged quantization record ({exc})") from exc
