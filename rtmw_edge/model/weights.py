"""Model weights: the official checkpoint (downloaded once, checksum-verified), a local file, or seeded: untrained,
or stress (untrained, then spread over channels like a trained network's: stress.py).

Everything here fails with one-line RtmwEdgeError messages, because the usual causes (offline machine,
corrupted download, checkpoint of another model) are for the user to fix, not bugs.
"""

from __future__ import annotations

import importlib
import math
import pickle
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from rtmw_edge.cache import cache_dir
from rtmw_edge.download import DownloadError, fetch, mirrored, one_line, sha256_of, verified
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.model.registry import ModelSpec

# mmpose checkpoints also hold the data preprocessor's mean/std buffers; our model normalises elsewhere.
DROPPED_PREFIXES = ("data_preprocessor.",)
# Uniform samples summed to approximate a normal (Irwin-Hall): only additions, so bit-exact everywhere.
IRWIN_HALL_TERMS = 12
BN_PROBE_BATCH = 4
BN_VARIANCE_INFLATION = 4.0


@dataclass(frozen=True)
class Weights:
    """What a model was loaded with, for reports and reproducibility.

    kind: 'official' (source is the checkpoint URL), 'file' (source is the path), or a seeded kind of kinds.py
    (source is the kind); sha256 is that of the file loaded, None for seeded weights.
    """

    kind: str
    source: str
    sha256: str | None


# --------------------------------------------------------------------------- official checkpoints


def checkpoint_url(spec: ModelSpec) -> str:
    """The URL of a model's official checkpoint, on the mirror when $RTMW_EDGE_MIRROR names one."""
    return mirrored(spec.url)


def cached_checkpoint(spec: ModelSpec) -> Path | None:
    """The cached official checkpoint of `spec`, verified against its sha256 prefix; None if absent."""
    return verified(cache_dir() / spec.checkpoint, spec.sha256_prefix)


def fetch_checkpoint(spec: ModelSpec, progress: bool = True) -> Path:
    """The official checkpoint of `spec` from the cache, downloading it first when absent."""
    return fetch(checkpoint_url(spec), cache_dir() / spec.checkpoint, spec.sha256_prefix, progress=progress)


# --------------------------------------------------------------------------- checkpoint files


def _numpy_module(*names: str) -> ModuleType:
    """The first importable module among `names` (numpy moved `core` to `_core` in 2.0)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(names[0])


def _numpy_safe_globals() -> list:
    """Globals that unpickle numpy arrays, scalars and dtypes, under numpy 1.x and 2.x module paths.

    mmpose stores dataset metadata (numpy arrays) in `meta`; allowing exactly these keeps
    `weights_only=True` (no arbitrary code on load) working for official checkpoints.
    """
    multiarray = _numpy_module("numpy._core.multiarray", "numpy.core.multiarray")
    found: list = [np.ndarray, np.dtype]
    for func in ("_reconstruct", "scalar"):
        fn = getattr(multiarray, func)
        found += [(fn, f"numpy.core.multiarray.{func}"), (fn, f"numpy._core.multiarray.{func}")]
    found += sorted({type(np.dtype(code)) for code in np.typecodes["All"]}, key=lambda t: t.__name__)
    return found


def _torch_load(path: Path) -> object:
    """torch.load with weights_only=True, allowing numpy metadata; errors name the path."""
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found:
            raise RtmwEdgeError(f"checkpoint {path} holds objects other than tensors ({found.group(1)}); "
                                "only tensors, numpy arrays and plain values are loaded") from exc
        raise RtmwEdgeError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): "
                            f"{_first_line(exc)}") from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, KeyError, ... on damaged files
        raise RtmwEdgeError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): "
                            f"{_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    """Exception type and the first line of its text: torch's messages run over many lines."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _state_dict_of(obj: object, path: Path) -> dict:
    """The tensor dict inside a loaded object: mmpose's {'state_dict', 'meta'} or a plain state_dict."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise RtmwEdgeError(f"checkpoint {path} is not a dict of tensors (it holds a {type(obj).__name__})")
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise RtmwEdgeError(f"checkpoint {path} is not a dict of tensors: entry {key!r} is a "
                                f"{type(value).__name__}")
    return obj


def _clean_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop training-only entries and a DataParallel `module.` prefix shared by every key."""
    kept = {k: v for k, v in state_dict.items() if not k.startswith(DROPPED_PREFIXES)}
    if kept and all(k.startswith("module.") for k in kept):
        kept = {k.removeprefix("module."): v for k, v in kept.items()}
    return kept


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint (mmpose layout or plain state_dict) into a CPU state_dict, without running code."""
    path = Path(path)
    if not path.exists():
        raise RtmwEdgeError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise RtmwEdgeError(f"checkpoint {path} is not a file")
    state_dict = _clean_keys(_state_dict_of(_torch_load(path), path))
    if not state_dict:
        raise RtmwEdgeError(f"checkpoint {path} holds no model tensors")
    return state_dict


# --------------------------------------------------------------------------- applying weights


def _model_name(model: nn.Module) -> str:
    """The registry name of an RTMW model, else its class name, for error messages."""
    spec = getattr(model, "spec", None)
    return getattr(spec, "name", None) or type(model).__name__


def _key_problem(kind: str, keys: list[str]) -> str:
    """'missing key 'a' (and 3 more)': the first key in sorted order, and how many others."""
    more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
    return f"{kind} key '{keys[0]}'{more}"


def apply_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load `state_dict` strictly, first checking keys and shapes so that errors name what is wrong."""
    name = _model_name(model)
    expected = model.state_dict()
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    if missing or unexpected:
        problems = [_key_problem("missing", missing)] if missing else []
        problems += [_key_problem("unexpected", unexpected)] if unexpected else []
        hint = " (looks like a checkpoint of another model)" if unexpected else ""
        raise RtmwEdgeError(f"checkpoint {source} does not fit {name}: {', '.join(problems)}{hint}")
    for key in sorted(expected):
        want, got = tuple(expected[key].shape), tuple(state_dict[key].shape)
        if want != got:
            raise RtmwEdgeError(f"checkpoint {source} does not fit {name}: '{key}' has shape {list(got)} but "
                                f"the model expects {list(want)} (looks like a checkpoint of another model)")
    model.load_state_dict(state_dict, strict=True)


# --------------------------------------------------------------------------- untrained weights


def _generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator seeded by crc32(name) started from `seed`: no global RNG state, no module order.

    The CPU generator keeps only 32 bits of its seed, so the two are mixed into 32 bits (crc32 from a
    start value is a bijection of that value: distinct seeds give distinct streams for every name).
    """
    gen = torch.Generator(device="cpu")
    gen.manual_seed(zlib.crc32(name.encode("utf-8"), seed & 0xFFFFFFFF))
    return gen


def _uniform(shape: torch.Size, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    """Uniform samples drawn in float64 (a serial, platform-independent kernel) and rounded once."""
    return torch.rand(shape, generator=gen, dtype=torch.float64) * (high - low) + low


def _normal(shape: torch.Size, std: float, gen: torch.Generator) -> torch.Tensor:
    """Approximately normal samples from sums of uniforms: no transcendental functions, so bit-exact."""
    total = torch.zeros(shape, dtype=torch.float64)
    for _ in range(IRWIN_HALL_TERMS):  # elementwise adds in a fixed order, unlike a vectorised sum
        total += torch.rand(shape, generator=gen, dtype=torch.float64)
    return (total - IRWIN_HALL_TERMS / 2) * std


def _fan_in_bound(shape: torch.Size) -> float:
    """1/sqrt(fan_in), PyTorch's default bound for conv and linear layers."""
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
    return 1.0 / math.sqrt(max(fan_in, 1))


def _untrained_value(module: nn.Module, attr: str, like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The untrained value of one state_dict entry, chosen by its owning module type and attribute."""
    shape = like.shape
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        one = attr in ("weight", "running_var")
        return torch.ones(shape) if one else torch.zeros(shape)
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
        bound = _fan_in_bound(module.weight.shape)
        return _uniform(shape, -bound, bound, gen)
    if attr == "gamma":
        return _uniform(shape, 0.5, 1.5, gen)
    if attr == "beta":
        return _normal(shape, 0.1, gen)
    if not like.is_floating_point() or attr == "bias":
        return torch.zeros(shape)
    if like.dim() >= 2:
        bound = _fan_in_bound(shape)
        return _uniform(shape, -bound, bound, gen)
    return torch.ones(shape)  # ScaleNorm g, Scale, other gains


def init_untrained(model: nn.Module, seed: int = 0) -> None:
    """Give `model` deterministic weights whose outputs are finite and non-trivial.

    Used when no checkpoint is available (tests, offline smoke runs); every tensor depends only on
    `seed` and its state_dict name, so results are bit-identical on every call and machine.
    """
    state = model.state_dict()
    new_state = {}
    for name, tensor in state.items():
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        value = _untrained_value(module, attr, tensor, _generator(seed, name))
        new_state[name] = value.to(dtype=tensor.dtype)
    model.load_state_dict(new_state, strict=True)


def calibrate_batchnorm(model: nn.Module, input_hw: tuple[int, int], seed: int = 0) -> None:
    """Give every BatchNorm the statistics of a seeded batch, its variance inflated by BN_VARIANCE_INFLATION.

    Random weights with unit BatchNorm statistics shrink activations layer after layer to ~1e-7, which
    int8 and float16 flush to zero; batch statistics alone make the net chaotic (float32 rounding grows
    to 1e-3). Slightly inflated statistics keep activations near 0.1 and perturbations damped, as in a
    trained network, so precision checks on untrained weights stress realistic ranges.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: exactly this batch's statistics
    probe = torch.randn(BN_PROBE_BATCH, 3, *input_hw, generator=torch.Generator().manual_seed(seed))
    model.train()
    try:
        with torch.no_grad():
            model(probe)
    finally:
        model.eval()
        for norm in norms:
            norm.momentum = 0.1
            norm.running_var.mul_(BN_VARIANCE_INFLATION)


def _untrained(model: nn.Module, spec: ModelSpec) -> Weights:
    init_untrained(model)
    calibrate_batchnorm(model, spec.input_hw)
    return Weights("untrained", "untrained", None)


def _stress(model: nn.Module, spec: ModelSpec) -> Weights:
    from rtmw_edge.model.stress import apply_stress

    init_untrained(model)
    apply_stress(model, spec.input_hw, spec.sigma, _seeded_normal)
    return Weights("stress", "stress", None)


def _seeded_normal(name: str, count: int) -> torch.Tensor:
    return _normal(torch.Size([count]), 1.0, _generator(0, name)).float()


# --------------------------------------------------------------------------- entry point


def _load_file(model: nn.Module, path: Path, kind: str, source: str) -> Weights:
    """Load a checkpoint file into `model` and record its sha256."""
    apply_state_dict(model, load_checkpoint(path), str(path))
    return Weights(kind, source, sha256_of(path))


def _load_official(model: nn.Module, spec: ModelSpec, allow_untrained: bool, progress: bool) -> Weights:
    """The official checkpoint; when it cannot be downloaded, untrained weights if allowed."""
    try:
        path = fetch_checkpoint(spec, progress=progress)
    except DownloadError as exc:
        reason = one_line(exc)
        if not allow_untrained:
            raise RtmwEdgeError(f"official weights for {spec.name} unavailable ({reason}); pass "
                                "--weights PATH to use a local checkpoint or --weights untrained") from exc
        print(f"warning: official weights for {spec.name} unavailable ({reason}); "
              "continuing with UNTRAINED weights", file=sys.stderr)
        return _untrained(model, spec)
    return _load_file(model, path, "official", checkpoint_url(spec))


def load_weights(model: nn.Module, spec: ModelSpec, weights: str = "auto", allow_untrained: bool = False,
                 progress: bool = True) -> Weights:
    """Put weights into `model`: 'auto' (official checkpoint), 'untrained', 'stress', or a checkpoint path."""
    if weights == "auto":
        return _load_official(model, spec, allow_untrained, progress)
    if weights == "untrained":
        return _untrained(model, spec)
    if weights == "stress":
        return _stress(model, spec)
    path = Path(weights).expanduser()
    if not path.exists():
        raise RtmwEdgeError(f"weights file {path} does not exist "
                            "(use --weights auto, --weights untrained, --weights stress or a path to a checkpoint)")
    return _load_file(model, path, "file", str(path))
