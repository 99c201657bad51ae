"""What one bench run measured, as typed data, and its results.json: written and read here and nowhere else.

results.json is what a device brings back for `rtmw-edge report merge`, so its shape is tagged (`format`) and a
file of another shape or version is refused in one line instead of failing somewhere in the rendering.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rtmw_edge.bench.timing import percentiles_ms
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.machine import Machine

FORMAT = "rtmw-edge-bench/3"
RESULTS_FILE = "results.json"
METRICS = ("ap", "agreement")  # AP against ground truth; INT8's agreement (OKS AP) with FP32's own predictions


@dataclass(frozen=True)
class Latency:
    """Milliseconds per item (crop or frame) over the interleaved rounds: percentiles and every round."""

    p50: float
    p90: float
    p99: float
    runs: tuple[float, ...]  # in round order, so two artifacts' rounds pair up

    @classmethod
    def of(cls, seconds: np.ndarray, per: int = 1) -> Latency:
        """From seconds per call, a call handling `per` items."""
        ms = np.asarray(seconds, np.float64) * 1000.0 / per
        return cls(**percentiles_ms(seconds, per), runs=tuple(round(float(m), 3) for m in ms))


@dataclass(frozen=True)
class Speedup:
    """Baseline median / artifact median at batch 1, with its paired bootstrap interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Accuracy:
    """Whole-body and per-part accuracy (0-1) and where it comes from; metric None: not measured. A 3D model's
    quantization record adds its root-aligned 3D drift from FP32 (mm per part; FP32's is 0)."""

    metric: str | None  # one of METRICS, or None
    wholebody: float | None
    parts: dict[str, float]
    source: str
    drift_3d_mm: dict[str, float] | None = None


@dataclass(frozen=True)
class Figures:
    """Everything measured of one artifact."""

    name: str  # unique among the run's artifacts
    path: str
    label: str
    model: str
    backend: str
    precision: str
    trained: bool
    options: dict[str, object]  # what its runner was given (threads, device)
    size_mb: float
    load_s: float
    mem_mb: float | None  # None where the OS does not say
    latency_ms: dict[int, Latency]  # batch size -> per crop
    speedup: Speedup
    accuracy: Accuracy
    e2e_ms: Latency | None  # per frame, detector + pose; None without --detector
    video_fps: VideoFps | None = None  # frames per second over --video; None without it


@dataclass(frozen=True)
class VideoFps:
    """Frames per second over the whole video, end to end (decoding, detector every N frames, pose, tracking,
    smoothing): the median over the interleaved passes, and each pass."""

    p50: float
    runs: tuple[float, ...]  # in round order

    @classmethod
    def of(cls, frames: int, seconds: np.ndarray) -> VideoFps:
        fps = frames / np.asarray(seconds, np.float64)
        return cls(float(np.median(fps)), tuple(round(float(f), 3) for f in fps))


@dataclass(frozen=True)
class Frame:
    """The image the end-to-end latency is measured on, and what the detector finds there."""

    image: str
    width: int
    height: int
    persons: int
    detector: str


@dataclass(frozen=True)
class Video:
    """The video the frames per second are measured on, and how."""

    file: str
    width: int
    height: int
    frames: int
    det_every: int  # the detector on one frame in this many
    rounds: int  # passes over the whole video per artifact, interleaved
    detector: str


@dataclass(frozen=True)
class RunSettings:
    """The settings a run used, every default resolved."""

    threads: int | None  # None: each runtime's default
    batch: int
    runs: int
    warmup: int
    eval: str | None
    detector: str | None
    frame: Frame | None
    video: Video | None
    device_profile: str | None
    baseline: str  # name of the artifact the speed-ups are against
    interval: float  # level of the speed-up's bootstrap interval


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


@dataclass(frozen=True)
class Recommendation:
    """The precision a device profile prefers for one backend on this CPU, and why (its `[[choose]]` rules)."""

    backend: str
    precision: str
    reason: str


@dataclass(frozen=True)
class BenchResults:
    """One bench run on one device."""

    label: str
    created: str  # ISO 8601, UTC
    machine: Machine
    settings: RunSettings
    artifacts: tuple[Figures, ...]
    skipped: tuple[Skipped, ...]
    recommended: tuple[Recommendation, ...] = ()  # with --device-profile

    def to_json(self) -> str:
        data = {"format": FORMAT, **asdict(self)}
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "results.json") -> BenchResults:
        """Parse what to_json wrote; anything else (another format, an older version) is one RtmwEdgeError."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RtmwEdgeError(f"{source} is not JSON ({exc})") from exc
        found = data.get("format") if isinstance(data, dict) else None
        if found != FORMAT:
            older = isinstance(found, str) and found.startswith("rtmw-edge-bench/")
            why = f"it is {found}, from another rtmw-edge version: bench again" if older else "no such format tag"
            raise RtmwEdgeError(f"{source} is not a results.json written by rtmw-edge bench ({FORMAT}): {why}")
        try:
            return _results(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RtmwEdgeError(f"{source} is a damaged results.json ({type(exc).__name__}: {exc})") from exc


def read_results(path: str | Path) -> BenchResults:
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RtmwEdgeError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    return BenchResults.from_json(text, str(path))


def _results(d: dict) -> BenchResults:
    m, s = d["machine"], d["settings"]
    machine = Machine(**{**m, "isa": tuple(m["isa"]), "flags": tuple(m["flags"]), "libraries": dict(m["libraries"])})
    frame = Frame(**s["frame"]) if s["frame"] is not None else None
    video = Video(**s["video"]) if s["video"] is not None else None
    settings = RunSettings(**{**s, "frame": frame, "video": video})
    artifacts = tuple(_figures(a) for a in d["artifacts"])
    for a in artifacts:
        if {1, settings.batch} - set(a.latency_ms):
            raise ValueError(f"{a.name} has no latency at batch 1 and {settings.batch}")
    return BenchResults(label=d["label"], created=d["created"], machine=machine, settings=settings,
                        artifacts=artifacts, skipped=tuple(Skipped(**x) for x in d["skipped"]),
                        recommended=tuple(Recommendation(**x) for x in d.get("recommended", ())))


def _figures(a: dict) -> Figures:
    if a["accuracy"]["metric"] not in (*METRICS, None):
        raise ValueError(f"unknown accuracy metric {a['accuracy']['metric']!r}")
    return Figures(**{**a, "options": dict(a["options"]),
                      "latency_ms": {int(batch): _latency(x) for batch, x in a["latency_ms"].items()},
                      "speedup": Speedup(**a["speedup"]), "accuracy": Accuracy(**a["accuracy"]),
                      "e2e_ms": _latency(a["e2e_ms"]) if a["e2e_ms"] is not None else None,
                      "video_fps": VideoFps(**{**a["video_fps"], "runs": tuple(a["video_fps"]["runs"])})
                      if a["video_fps"] is not None else None})


def _latency(x: dict) -> Latency:
    return Latency(**{**x, "runs": tuple(x["runs"])})
