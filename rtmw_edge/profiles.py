"""Device profiles are data: `runtimes/<device>/profile.toml` says which backends to run there, in which order,
with how many threads, on which device (ONNX Runtime provider, OpenVINO device, ncnn Vulkan on or off), which
person detector `--detector auto` takes, and which precision to prefer by CPU feature (its `[[choose]]` rules,
read by `Profile.choose`), and how `predict --ray` spreads over a Ray cluster (its `[ray]` table).

`rtmw-edge bench --device-profile NAME` applies one; NAME is a shipped profile or the path of a TOML file. Where
none is named (predict, the Python API) the machine picks one: `default_profile_name`.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rtmw_edge.backends import BACKENDS, usable_cores
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.model.detectors import DETECTORS, find_detector
from rtmw_edge.packaged import package_data, read_toml

PROFILE_FILE = "profile.toml"
PRECISIONS = ("int8", "bf16", "fp16", "fp32")
DEFAULT_DETECTOR = "rtmdet-nano"  # of a profile that names none: the smallest
ARM_MACHINES = ("aarch64", "arm64")
JETSON_MARK = Path("/etc/nv_tegra_release")  # L4T writes it on every Jetson
_KEYS = {"name", "description", "backends", "precisions", "threads", "device", "detector", "bench", "choose", "ray"}
_BENCH_KEYS = {"batch", "runs"}
_RAY_KEYS = {"concurrency", "threads", "batch"}
_RULE_KEYS = {"cpu", "flags", "precisions", "why"}


@dataclass(frozen=True)
class Rule:
    """One `[[choose]]` rule: on a CPU with any of `flags`, prefer the fastest of `precisions` within budget."""

    cpu: str  # the feature as people name it ("AMX or AVX512-BF16")
    flags: tuple[str, ...]  # CPU flags (/proc/cpuinfo), any one of which is the feature
    precisions: tuple[str, ...]  # the candidates; the first where nothing measured them
    why: str


@dataclass(frozen=True)
class RayPlan:
    """`predict --ray`: how many actors (each loads the Predictor once), CPU threads each, images per batch."""

    concurrency: int = 2
    threads: int = 1
    batch: int = 16


@dataclass(frozen=True)
class Choice:
    """The precision a profile prefers on one CPU, and why (one line that does not repeat the precision)."""

    precision: str
    reason: str


@dataclass(frozen=True)
class Profile:
    """How to run on one kind of device. `threads` None leaves the choice to each runtime."""

    name: str
    description: str
    backends: tuple[str, ...]  # preference order; artifacts of other backends are not run on this device
    precisions: tuple[str, ...]  # preference order, best expected first
    threads: int | None
    devices: dict[str, str]  # backend -> the runner's `device` option
    detector: str  # the registered person detector `--detector auto` takes here
    batch: int
    runs: int
    path: Path
    rules: tuple[Rule, ...] = ()  # by CPU feature, the first that the CPU has decides
    ray: RayPlan = RayPlan()

    def choose(self, flags: frozenset[str], measured: Mapping[str, tuple[float, bool]] | None = None,
               measured_on: frozenset[str] = frozenset()) -> Choice:
        """The precision to prefer on a CPU with `flags`: of the first matching rule's precisions, the fastest that
        `measured` (precision -> (latency ms, within budget), what a quantize record says) has within budget, when
        the CPU that measured it (`measured_on`, its flags) is one the same rule picks; else the rule's first."""
        rule = self._rule(flags)
        if rule is None:
            return Choice(self.precisions[0], f"no [[choose]] rule of {self.name} matches this CPU: the first of "
                                              "its precisions")
        found = flags & set(rule.flags)
        head = f"{rule.cpu} ({', '.join(sorted(found))})"
        usable = {p: measured[p] for p in rule.precisions if measured and p in measured}
        if len(rule.precisions) == 1 or not usable or self._rule(measured_on) != rule:
            why = rule.why if len(rule.precisions) == 1 else (
                f"{rule.why}; no quantize record measured {' or '.join(rule.precisions)} on such a CPU, so the "
                "rule's first")
            return Choice(rule.precisions[0], f"{head}: {why}")
        fitting = {p: ms for p, (ms, within) in usable.items() if within}
        figures = ", ".join(f"{p} {ms:.1f} ms{'' if within else ' (over budget)'}"
                            for p, (ms, within) in usable.items())
        best = min(fitting, key=fitting.get) if fitting else rule.precisions[0]
        verdict = "the fastest within budget" if fitting else "none within budget, so the rule's first"
        return Choice(best, f"{head}: {verdict} by the quantize record ({figures}); {rule.why}")

    def _rule(self, flags: frozenset[str]) -> Rule | None:
        return next((rule for rule in self.rules if flags & set(rule.flags)), None)

    def runner_options(self, backend: str, threads: int | None = None) -> dict[str, object]:
        """Options for `open_runner`/`Predictor` on `backend`; an explicit `threads` wins over the profile's,
        which is a device's core count: a machine with fewer cores (a smaller board, a container) gets them all."""
        return {"threads": threads or self.cores(), "device": self.devices.get(backend)}

    def cores(self) -> int | None:
        """The profile's threads, at most the CPUs this process may use (None: each runtime's choice)."""
        return min(self.threads, usable_cores()) if self.threads else None

    def rank(self, backend: str, precision: str) -> tuple[int, int]:
        """Sort key: the profile's preferred backend first, then its preferred precision."""
        return self.backends.index(backend), self.precisions.index(precision)

    def installed_backend(self) -> str:
        """The profile's most preferred backend whose runtime is installed here (an edge device has one)."""
        for name in self.backends:
            if _installed(BACKENDS[name].packages[0]):
                return name
        extras = " or ".join(f"'rtmw-edge[{BACKENDS[name].extra}]'" for name in self.backends)
        raise RtmwEdgeError(f"no runtime of the {self.name} profile's backends is installed: pip install {extras}")


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def default_profile_name() -> str:
    """The shipped profile of this machine: a Jetson, else any 64-bit Arm board as a Raspberry Pi, else intel-cpu."""
    if platform.machine().lower() in ARM_MACHINES:
        return "jetson" if JETSON_MARK.exists() else "raspberry-pi"
    return "intel-cpu"


def shipped_profiles() -> list[str]:
    return sorted(p.parent.name for p in package_data("runtimes").glob(f"*/{PROFILE_FILE}"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name (`raspberry-pi`, `jetson`, `intel-cpu`), or a profile.toml / its folder."""
    path = Path(name_or_path)
    if path.is_dir():
        path = path / PROFILE_FILE
    if not path.is_file():
        path = package_data("runtimes") / str(name_or_path) / PROFILE_FILE
    if not path.is_file():
        raise RtmwEdgeError(f"unknown device profile {str(name_or_path)!r}: not a profile.toml and not one of the "
                            f"shipped profiles ({', '.join(shipped_profiles())})")
    return _parse(read_toml(path, "device profile"), path)


def _parse(data: dict, path: Path) -> Profile:
    """Check every key, so a typo fails here instead of silently running with a default."""
    _only(data, _KEYS, path, "")
    bench = data.get("bench", {})
    _only(bench, _BENCH_KEYS, path, "bench.")
    ray = data.get("ray", {})
    _only(ray, _RAY_KEYS, path, "ray.")
    devices = data.get("device", {})
    _only(devices, set(BACKENDS), path, "device.")
    backends = _choice_list(data.get("backends", list(BACKENDS)), BACKENDS, "backends", path)
    precisions = _choice_list(data.get("precisions", list(PRECISIONS)), PRECISIONS, "precisions", path)
    threads = _count(data.get("threads", 0), "threads", path, minimum=0)
    detector = data.get("detector", DEFAULT_DETECTOR)
    if not isinstance(detector, str) or find_detector(detector) is None:
        raise RtmwEdgeError(f"device profile {path}: 'detector' must be one of {', '.join(d.name for d in DETECTORS)}"
                            f", got {detector!r}")
    rules = _rules(data.get("choose", []), path)
    return Profile(
        name=str(data.get("name", path.parent.name)),
        description=str(data.get("description", "")),
        backends=backends,
        precisions=precisions + tuple(p for p in PRECISIONS if p not in precisions),
        threads=threads or None,
        devices={backend: str(device) for backend, device in devices.items()},
        detector=detector,
        batch=_count(bench.get("batch", 5), "bench.batch", path),
        runs=_count(bench.get("runs", 20), "bench.runs", path),
        path=path,
        rules=rules,
        ray=RayPlan(*(_count(ray.get(key, getattr(RayPlan, key)), f"ray.{key}", path)
                      for key in ("concurrency", "threads", "batch"))),
    )


def _rules(tables: object, path: Path) -> tuple[Rule, ...]:
    if not isinstance(tables, list):
        raise RtmwEdgeError(f"device profile {path}: 'choose' must be a list of [[choose]] tables")
    rules = []
    for index, table in enumerate(tables):
        key = f"choose[{index}]"
        _only(table, _RULE_KEYS, path, f"{key}.")
        missing = sorted(_RULE_KEYS - set(table))
        if missing:
            raise RtmwEdgeError(f"device profile {path}: '{key}' has no '{missing[0]}'")
        flags = table["flags"]
        if not isinstance(flags, list) or not flags or not all(isinstance(f, str) for f in flags):
            raise RtmwEdgeError(f"device profile {path}: '{key}.flags' must list CPU flags (/proc/cpuinfo)")
        rules.append(Rule(str(table["cpu"]), tuple(flags),
                          _choice_list(table["precisions"], PRECISIONS, f"{key}.precisions", path), str(table["why"])))
    return tuple(rules)


def _only(table: object, allowed: set[str], path: Path, prefix: str) -> None:
    if not isinstance(table, dict):
        raise RtmwEdgeError(f"device profile {path}: '{prefix.rstrip('.')}' must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RtmwEdgeError(f"device profile {path}: unknown key '{prefix}{unknown[0]}' "
                            f"(known: {', '.join(sorted(allowed))})")


def _choice_list(values: object, allowed: tuple[str, ...], key: str, path: Path) -> tuple[str, ...]:
    if not isinstance(values, list) or not values or any(v not in allowed for v in values) \
            or len(set(values)) != len(values):
        raise RtmwEdgeError(f"device profile {path}: '{key}' must list distinct values of {', '.join(allowed)}")
    return tuple(values)


def _count(value: object, key: str, path: Path, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RtmwEdgeError(f"device profile {path}: '{key}' must be an integer >= {minimum}, got {value!r}")
    return value
