"""The contracts between rtmw-edge and its backends: a loaded network (`Runner`) and one record per backend
(`Backend`) saying everything else the backend knows. Nothing above `backends/` ever branches on a backend."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from rtmw_edge.errors import MissingExtraError, RtmwEdgeError


@runtime_checkable
class Runner(Protocol):
    """A loaded network. `run` takes one float32 NCHW batch and returns the outputs in `output_names` order.

    Runners accept any batch size N >= 1; a backend without batching (ncnn) loops inside `run`.
    """

    backend: str
    path: Path
    input_name: str
    input_shape: tuple[int, int, int]  # (C, H, W); the batch axis is free
    output_names: tuple[str, ...]

    def run(self, batch: np.ndarray) -> list[np.ndarray]: ...


@runtime_checkable
class PixelRunner(Protocol):
    """A runner that can also take the crops as pixels and normalise them inside its own graph.

    `run_pixels` gets [N,H,W,3] uint8 BGR crops and computes what `run` computes on (RGB - mean) / std of them;
    the runtime then converts, reorders and normalises in its own threads, fused with the first layer, which
    saves the frame numpy's pass over every pixel (a pose network's input is the largest tensor it reads).
    """

    def run_pixels(self, pixels: np.ndarray, mean_rgb: Sequence[float], std_rgb: Sequence[float]
                   ) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class Tolerance:
    """How far an exported artifact may stray from its source on the probe input.

    `max_rel` is the largest error relative to the largest |value| of the source's outputs (SimCC logits, or a
    detector's box distances in pixels); agreement counts argmax ties as agreeing and is pose-only.
    """

    max_rel: float
    min_agreement: float


@dataclass(frozen=True)
class Arithmetic:
    """What an artifact of one precision computes in, and the CPU instruction set that arithmetic needs.

    `needs` are CPU flags (/proc/cpuinfo), any one of which is enough; none: every CPU computes it. A precision
    whose arithmetic the CPU lacks is refused (export) or skipped (quantize, bench), never run in another one.
    """

    computes: str  # "bf16", "fp16", or "fp32" where only the stored weights are narrower
    needs: tuple[str, ...] = ()
    instruction_set: str = ""  # how people name `needs` ("AMX or AVX512-BF16")


@dataclass(frozen=True)
class Written:
    """What a converter or quantizer wrote: the main file and the blob names the backend knows the network by."""

    main_file: str
    input_name: str
    output_names: list[str]
    layer_names: dict[str, str] = field(default_factory=dict)  # backend layer -> source ONNX node
    reverted: list[str] = field(default_factory=list)  # layers a quantizer's own accuracy search left float
    int8_kernels: dict[str, int] | None = None  # int8 kernels the runtime really runs, by op (None: not counted)


@dataclass(frozen=True)
class Network:
    """A network file as a quantizer needs it: no artifact, no sidecar, just what the file is and is called."""

    path: Path
    input_name: str
    output_names: tuple[str, ...]
    layer_names: Mapping[str, str] = field(default_factory=dict)  # backend layer -> source ONNX node


@dataclass(frozen=True)
class KeepFloat:
    """What a quantizer leaves in float: source nodes matching `patterns` (regexes over ONNX node / op names)
    and backend layers named in `layers` (what a layer search found)."""

    patterns: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccuracyControl:
    """What a backend's own accuracy-controlled search needs: the gate's metric of a candidate network (higher
    is better), the budget in that metric's units, and how far it may go."""

    validate: Callable[[Runner], float]
    max_drop: float
    max_iterations: int  # quantizers that may go back to float
    ranking_inputs: int  # calibration inputs whose outputs rank the quantizers by harm


@dataclass(frozen=True)
class Backend:
    """Everything one backend knows, behind one record. Its code lives in the package `package`, whose modules
    are imported only when used: `runner.load`, `convert.convert`, `quantize.quantize` and, where
    `ranks_layers`, `quantize.rank_layers`."""

    name: str  # the one word for it in folders, sidecars, recipes, profiles and CLI choices
    package: str
    suffix: str  # of the main model file
    extra: str  # the pip extra that installs its runtime
    packages: tuple[str, ...]  # the distributions of that runtime, whose versions every record keeps
    precisions: tuple[str, ...]  # what export writes (int8 is quantize's)
    devices: tuple[str, ...]  # the runner's `device` option; the first is the default
    tolerances: Mapping[tuple[str, str], Tolerance]  # (artifact kind, precision) -> export's check
    arithmetic: Mapping[str, Arithmetic] = field(default_factory=dict)  # absent precision: computes in itself
    aliases: tuple[str, ...] = ()  # other names users type (the file format's name)
    reference: bool = False  # the float baseline others are compared with (what rtmlib runs)
    ranks_layers: bool = False  # can rank single layers by harm cheaply (the detector gate's search)
    accuracy_control: bool = False  # has its own accuracy-controlled quantization
    reads_onnx: bool = False  # its runner loads an ONNX file as it is (a conversion's reference without ours)

    def open(self, path: Path, **options) -> Runner:
        return self._module("runner").load(Path(path), **options)

    def convert(self, onnx_path: Path, folder: Path, stem: str, precision: str) -> Written:
        """Write `stem`.<suffix> (and companions) into `folder` from an fp32 ONNX file."""
        return self._module("convert").convert(Path(onnx_path), Path(folder), stem, precision)

    def quantize(self, network: Network, calibration: np.ndarray, settings: dict, keep: KeepFloat, folder: Path,
                 stem: str, control: AccuracyControl | None = None, progress: bool = False) -> Written:
        """INT8 files of `network` in `folder`, calibrated on `calibration` [N,C,H,W] with recipe `settings`;
        `progress` draws a bar for each step that takes long."""
        if control is not None and not self.accuracy_control:
            raise RtmwEdgeError(f"{self.name} has no accuracy-controlled quantization")
        searched = {"control": control} if control is not None else {}
        return self._module("quantize").quantize(network, calibration, settings, keep, Path(folder), stem,
                                                 progress=progress, **searched)

    def rank_layers(self, network: Network, calibration: np.ndarray, settings: dict,
                    progress: bool = False) -> list[str]:
        """Quantizable layers the recipe leaves in int8, most harmful first."""
        if not self.ranks_layers:
            raise RtmwEdgeError(f"{self.name} cannot rank layers by harm")
        return self._module("quantize").rank_layers(network, calibration, settings, progress=progress)

    def tolerance(self, kind: str, precision: str) -> Tolerance:
        if (kind, precision) not in self.tolerances:
            raise RtmwEdgeError(f"{self.name} has no {precision} export for {kind} models "
                                f"(precisions: {', '.join(self.precisions)})")
        return self.tolerances[kind, precision]

    def derive(self, fp32: Network, folder: Path, stem: str, precision: str) -> Written:
        """Write `stem`.<suffix> in `precision` into `folder` from this backend's own FP32 files (no ONNX)."""
        return self._module("convert").derive(fp32, Path(folder), stem, precision)

    def computes(self, precision: str) -> str:
        """The arithmetic an artifact of `precision` runs in on a CPU."""
        found = self.arithmetic.get(precision)
        return found.computes if found else precision

    def lacks(self, precision: str, flags: frozenset[str]) -> str | None:
        """Why a CPU with `flags` cannot compute `precision` on this backend (one line), or None when it can."""
        found = self.arithmetic.get(precision)
        if found is None or not found.needs or flags & set(found.needs):
            return None
        return (f"{self.name} {precision} computes in {found.computes}, which needs {found.instruction_set} "
                f"(CPU flag {' or '.join(found.needs)}): this CPU has none of them")

    def _module(self, part: str):
        try:
            return importlib.import_module(f"{self.package}.{part}")
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.startswith("rtmw_edge"):
                raise
            raise MissingExtraError(exc.name.split(".")[0], self.extra) from exc


# ------------------------------------------------------------------------------------ runner helpers

def select_names(available: Sequence[str], wanted: Sequence[str] | None, what: str, path: Path) -> tuple[str, ...]:
    """`wanted` (default: all of `available`), checked so a typo fails with the names that exist."""
    if wanted is None:
        return tuple(available)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise RtmwEdgeError(f"{path}: no {what} named {', '.join(unknown)}; it has {', '.join(available)}")
    return tuple(wanted)


def as_batch(batch: np.ndarray, input_shape: tuple[int, int, int], path: Path) -> np.ndarray:
    """The batch as contiguous float32 NCHW, rejected with a clear message when its shape cannot fit."""
    batch = np.asarray(batch)
    if batch.ndim != 4 or batch.shape[0] < 1 or tuple(batch.shape[1:]) != tuple(input_shape):
        raise RtmwEdgeError(f"{path}: expected a batch [N,{','.join(map(str, input_shape))}], got {batch.shape}")
    return np.ascontiguousarray(batch, dtype=np.float32)


def as_pixels(pixels: np.ndarray, input_shape: tuple[int, int, int], path: Path) -> np.ndarray:
    """`PixelRunner` crops as contiguous uint8 [N,H,W,3], rejected with a clear message when they cannot fit."""
    height, width = input_shape[1:]
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[0] < 1 or pixels.shape[1:] != (height, width, 3):
        raise RtmwEdgeError(f"{path}: expected uint8 crops [N,{height},{width},3], got {pixels.dtype} "
                            f"{list(pixels.shape)}")
    return np.ascontiguousarray(pixels)
