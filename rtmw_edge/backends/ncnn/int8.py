"""ncnn INT8 post-training quantization in Python, because the ncnn pip wheel ships neither ncnn2table nor ncnn2int8.

`activation_scales` and `weight_scales` compute what ncnn2table computes (one scale for the input blob of each
quantizable layer, one weight scale per output channel or depthwise group); `write_int8` does what ncnn2int8 does
(int8 weights, `8=int8_scale_term`, scales appended, every other byte copied); `quantize_ncnn` chains them.
Binary details follow ncnn's sources: ModelBin's type-0 storage tags, each weighted layer's load_model order, and
the quantizer's rounding (half away from zero, clamped to +-127). Everything is deterministic: the same inputs give
byte-identical files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ncnn
import numpy as np
from tqdm import tqdm

from rtmw_edge.backends.ncnn.modelbin import QUANTIZABLE, TAG_INT8, Read, param_int, quantizable, read_weights, span
from rtmw_edge.backends.ncnn.net import load_net
from rtmw_edge.backends.ncnn.param import ParamGraph, ParamLayer, param_text
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.fileio import atomic_file

HISTOGRAM_BINS = 2048  # ncnn2table's histogram of |x| over [0, absmax]
TARGET_BINS = 128  # int8 levels on one side of zero
KL_EPS = 1e-4  # ncnn2table adds it to every bin so the KL divergence stays finite
PERCENTILE = 99.99
INT8_MAX = 127.0
WINOGRAD_INT8_MAX = 31.0  # ncnn's int8 winograd F43 (3x3, stride 1, dilation 1) needs 6-bit weights


# ---------------------------------------------------------------------------------------------- table

@dataclass
class Int8Table:
    """ncnn2table's result: weight scales per output channel (per group for depthwise) and input-blob scales.

    Keyed by layer name. `save`/`load` use ncnn's .table text (`name_param_0 s1 s2 ...`, then `name s`), so a
    table from the official ncnn2table works here and ours works with the official ncnn2int8.
    """

    weights: dict[str, np.ndarray] = field(default_factory=dict)
    activations: dict[str, float] = field(default_factory=dict)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        # 9 significant digits: float32 scales survive the text round trip exactly
        lines = [f"{name}_param_0 " + " ".join(f"{s:.9g}" for s in scales) for name, scales in self.weights.items()]
        lines += [f"{name} {scale:.9g}" for name, scale in self.activations.items()]
        with atomic_file(path, overwrite=overwrite) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Int8Table:
        table = cls()
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            key, *values = line.split()
            try:
                scales = np.array(values, dtype=np.float32)
            except ValueError as exc:
                raise RtmwEdgeError(f"{path}:{number}: scales must be numbers: {line.strip()!r}") from exc
            if not scales.size:
                raise RtmwEdgeError(f"{path}:{number}: {key} has no scale")
            if key.endswith("_param_0"):
                table.weights[key[: -len("_param_0")]] = scales
            elif "_param_" not in key:  # other _param_N lines belong to layer types not quantized here
                table.activations[key] = float(scales[0])
        return table


def weight_scales(param: str | os.PathLike, bin: str | os.PathLike) -> dict[str, np.ndarray]:
    """Per-channel (per-group for depthwise) weight scales, 127/absmax as ncnn2table computes them."""
    graph = ParamGraph.read(param)
    _, reads = read_weights(graph, Path(bin))
    return {layer.name: _channel_scales(layer, reads[layer.name][0].values) for layer in quantizable(graph)}


def _channel_scales(layer: ParamLayer, weights: np.ndarray) -> np.ndarray:
    rows = weights.astype(np.float32).reshape(QUANTIZABLE[layer.kind].channels(layer), -1)
    absmax = np.abs(rows).max(axis=1)
    bound = np.float32(WINOGRAD_INT8_MAX if _runs_winograd_int8(layer) else INT8_MAX)
    with np.errstate(divide="ignore"):  # an all-zero row gets scale 1, as ncnn2table's guard gives
        return np.where(absmax > 0, bound / absmax, np.float32(1)).astype(np.float32)


def _runs_winograd_int8(layer: ParamLayer) -> bool:
    """ncnn2table's rule: plain 3x3 convolutions may run int8 winograd F43, which needs 6-bit weights."""
    kernel = (param_int(layer, "1"), param_int(layer, "11", param_int(layer, "1")))
    dilation = (param_int(layer, "2", 1), param_int(layer, "12", param_int(layer, "2", 1)))
    stride = (param_int(layer, "3", 1), param_int(layer, "13", param_int(layer, "3", 1)))
    return layer.kind == "Convolution" and kernel == (3, 3) and dilation == (1, 1) and stride == (1, 1)


# ---------------------------------------------------------------------------------------- calibration

def _max_threshold(histogram: np.ndarray, absmax: float) -> float:
    return absmax


def _kl_threshold(histogram: np.ndarray, absmax: float) -> float:
    """ncnn2table's entropy calibration: the clipping threshold whose 128-level quantisation loses least (KL)."""
    thresholds = np.arange(TARGET_BINS, HISTOGRAM_BINS)
    kl = _kl_divergences(histogram / histogram.sum(), thresholds)
    best = int(thresholds[np.argmin(kl)])  # argmin keeps the first minimum, as ncnn's strict `<` does
    return (best + 0.5) * absmax / HISTOGRAM_BINS


def _kl_divergences(p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """ncnn2table's KL(clipped || expanded) for every threshold T at once, in O(128) per T rather than O(T).

    clipped c: p[:T] + eps, with the tail mass p[T-1:] folded into bin T-1. Level j of 128 covers source bins
    [j*w, (j+1)*w), w = T/128 >= 1, fractional bins split linearly; its mean mass per source bin is m_j.
    expanded e: m_j + eps on bins inside level j, and the two-level mix on the one bin a boundary cuts.
    KL = sum c*log(c) - sum c*log(e); the first sum and the level-interior part of the second come from prefix sums.
    """
    width = thresholds[:, None] / TARGET_BINS
    clipped = p + KL_EPS
    mass_before = np.concatenate([[0.0], np.cumsum(p)])
    clipped_before = np.concatenate([[0.0], np.cumsum(clipped)])
    entropy_before = np.concatenate([[0.0], np.cumsum(clipped * np.log(clipped))])
    bounds = width * np.arange(TARGET_BINS + 1)
    whole = np.floor(bounds).astype(np.int64)
    mass = mass_before[whole] + (bounds - whole) * np.append(p, 0.0)[whole]
    level = np.diff(mass, axis=1) / width  # mean mass per source bin
    log_expanded = np.log(level + KL_EPS)
    interior = np.ceil(bounds[:, :-1]).astype(np.int64), whole[:, 1:]
    cross = (log_expanded * (clipped_before[interior[1]] - clipped_before[interior[0]])).sum(axis=1)
    cut, share = whole[:, 1:-1], bounds[:, 1:-1] - whole[:, 1:-1]  # bins a level boundary cuts, part below it
    mixed = level[:, :-1] * share + level[:, 1:] * (1 - share) + KL_EPS
    cross += np.where(share > 0, clipped[cut] * np.log(mixed), 0.0).sum(axis=1)
    last = thresholds - 1
    tail = mass_before[-1] - mass_before[last] + KL_EPS  # bin T-1 holds everything from T-1 on
    cross += (tail - clipped[last]) * log_expanded[:, -1]  # bin T-1 lies inside the last level (w >= 1)
    return entropy_before[last] + tail * np.log(tail) - cross


def _percentile_threshold(histogram: np.ndarray, absmax: float) -> float:
    """The upper edge of the histogram bin where 99.99% of the non-zero |x| lie: ignores rare outliers."""
    cumulative = np.cumsum(histogram) / histogram.sum()
    return (int(np.searchsorted(cumulative, PERCENTILE / 100)) + 1) * absmax / HISTOGRAM_BINS


@dataclass(frozen=True)
class _Method:
    threshold: Callable[[np.ndarray, float], float]  # (histogram of |x|, absmax) -> clipping threshold
    needs_histogram: bool = True


METHODS: dict[str, _Method] = {
    "max": _Method(_max_threshold, needs_histogram=False),
    "kl": _Method(_kl_threshold),
    "percentile": _Method(_percentile_threshold),
}


def activation_scales(param: str | os.PathLike, bin: str | os.PathLike, crops: np.ndarray, method: str = "kl",
                      threads: int | None = None, progress: bool = False) -> dict[str, float]:
    """Scale (127 / threshold) of each quantizable layer's input blob, from fp32 ncnn runs over the crops.

    crops: [N, C, H, W] float32, preprocessed exactly as the network's input. method: "kl" (ncnn2table's
    default), "max" (127/absmax) or "percentile" (99.99% of non-zero |x|).
    """
    if method not in METHODS:
        raise RtmwEdgeError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    graph = ParamGraph.read(param)
    if len(graph.inputs) != 1:
        raise RtmwEdgeError(f"{param}: calibration needs exactly one Input layer, found {len(graph.inputs)}")
    inputs = _as_crops(crops, graph.input_shapes.get(graph.inputs[0]), Path(param))
    blob_of = {layer.name: layer.bottoms[0] for layer in quantizable(graph)}
    calibration = _Calibration(load_net(Path(param), Path(bin), threads), graph.inputs[0],
                               list(dict.fromkeys(blob_of.values())), inputs, progress)
    absmax = calibration.absmax()
    thresholds = absmax
    if METHODS[method].needs_histogram:
        thresholds = _thresholds(calibration.histograms(absmax), absmax, METHODS[method].threshold)
    return {name: _scale(thresholds[blob]) for name, blob in blob_of.items()}


def _thresholds(histograms: dict[str, np.ndarray], absmax: dict[str, float],
                threshold: Callable[[np.ndarray, float], float]) -> dict[str, float]:
    """Blobs a Split copies have identical statistics: each distinct one is searched once."""
    found: dict[tuple[bytes, float], float] = {}
    out = {}
    for blob, histogram in histograms.items():
        key = (histogram.tobytes(), absmax[blob])
        if key not in found:
            found[key] = threshold(histogram, absmax[blob]) if absmax[blob] > 0 else 0.0
        out[blob] = found[key]
    return out


def _scale(threshold: float) -> float:
    return float(np.float32(INT8_MAX) / np.float32(threshold)) if threshold > 0 else 1.0


def _as_crops(crops: np.ndarray, shape: tuple[int, int, int] | None, param: Path) -> np.ndarray:
    crops = np.asarray(crops, dtype=np.float32)
    if crops.ndim != 4 or not len(crops) or (shape is not None and tuple(crops.shape[1:]) != shape):
        want = ",".join(map(str, shape)) if shape else "C,H,W"
        raise RtmwEdgeError(f"{param}: calibration crops must be [N,{want}] with N >= 1, got {crops.shape}")
    return crops


@dataclass
class _Calibration:
    """Runs the fp32 network over the crops and hands back the blobs ncnn2table watches."""

    net: ncnn.Net
    input_name: str
    blobs: list[str]
    crops: np.ndarray
    progress: bool

    def absmax(self) -> dict[str, float]:
        absmax = dict.fromkeys(self.blobs, 0.0)
        for blob, values in self._activations("absmax"):
            absmax[blob] = max(absmax[blob], float(np.abs(values).max(initial=0.0)))
        return absmax

    def histograms(self, absmax: dict[str, float]) -> dict[str, np.ndarray]:
        histograms = {blob: np.zeros(HISTOGRAM_BINS, np.int64) for blob in self.blobs}
        for blob, values in self._activations("histogram"):
            if absmax[blob] > 0:
                histograms[blob] += _histogram(values, absmax[blob])
        return histograms

    def _activations(self, stage: str) -> Iterator[tuple[str, np.ndarray]]:
        for crop in tqdm(self.crops, desc=f"ncnn calibration ({stage})", disable=not self.progress):
            mat = ncnn.Mat(np.ascontiguousarray(crop))  # wraps `crop`: kept alive until extraction is done
            with self.net.create_extractor() as extractor:
                extractor.set_light_mode(False)  # keeps every blob: each watched blob is then computed once
                extractor.input(self.input_name, mat)
                for blob in self.blobs:
                    status, out = extractor.extract(blob)
                    if status != 0:
                        raise RtmwEdgeError(f"ncnn failed to compute blob {blob} (error {status})")
                    yield blob, np.array(out).ravel()


def _histogram(values: np.ndarray, absmax: float) -> np.ndarray:
    """ncnn2table's bins: zeros skipped, index = min(int(|x| / absmax * 2048), 2047) in float32."""
    magnitude = np.abs(values[values != 0])
    index = (magnitude / np.float32(absmax) * np.float32(HISTOGRAM_BINS)).astype(np.int64)
    return np.bincount(np.minimum(index, HISTOGRAM_BINS - 1), minlength=HISTOGRAM_BINS)


# ------------------------------------------------------------------------------------------ int8 model

def write_int8(param: str | os.PathLike, bin: str | os.PathLike, table: Int8Table | str | os.PathLike,
               out_param: str | os.PathLike, out_bin: str | os.PathLike, keep_float: Iterable[str] = frozenset(),
               overwrite: bool = False) -> dict:
    """Write the INT8 model: quantizable layers in `table` and not in `keep_float` get int8 weights and scales.

    Every other layer's bytes are copied unchanged. A layer with an input scale but no weight scales gets them
    from its weights. The pair is written atomically and only after stock ncnn has loaded it in INT8 mode.
    """
    table = table if isinstance(table, Int8Table) else Int8Table.load(table)
    text = param_text(Path(param))
    graph = ParamGraph(text)
    data, reads = read_weights(graph, Path(bin))
    layers = quantizable(graph)
    keep_float = set(keep_float)
    unknown = keep_float - {layer.name for layer in layers}
    if unknown:
        raise RtmwEdgeError(f"keep_float names no quantizable layer of {param}: {', '.join(sorted(unknown))}")
    kept = {layer.name: "keep_float" if layer.name in keep_float else "no input scale in the table"
            for layer in layers if layer.name in keep_float or layer.name not in table.activations}
    chosen = {layer.name for layer in layers} - set(kept)
    lines = [line for line in text.splitlines()[2:] if line.strip()]
    param_lines, bin_parts = text.splitlines()[:2], []
    for layer, line in zip(graph.layers, lines, strict=True):
        if layer.name in chosen:
            param_lines.append(_int8_line(layer))
            bin_parts.append(_int8_bytes(layer, reads[layer.name], table))
        else:
            param_lines.append(line)
            bin_parts.append(span(data, reads[layer.name]))
    out = b"".join(bin_parts)
    with atomic_file(out_param, overwrite) as tmp_param, atomic_file(out_bin, overwrite) as tmp_bin:
        tmp_param.write_text("\n".join(param_lines) + "\n", encoding="utf-8")
        tmp_bin.write_bytes(out)
        _check_loads(tmp_param, tmp_bin)
    return {"quantized": [layer.name for layer in layers if layer.name in chosen], "kept_float": kept,
            "fp32_bin_bytes": len(data), "int8_bin_bytes": len(out), "bin_ratio": len(out) / len(data)}


def _int8_line(layer: ParamLayer) -> str:
    params = {**layer.params, "8": str(QUANTIZABLE[layer.kind].int8_term)}
    fields = [str(len(layer.bottoms)), str(len(layer.tops)), *layer.bottoms, *layer.tops,
              *(f"{key}={value}" for key, value in params.items())]
    return f"{layer.kind:<24} {layer.name:<24} " + " ".join(fields)


def _int8_bytes(layer: ParamLayer, reads: list[Read], table: Int8Table) -> bytes:
    """load_model order: tagged int8 weight_data (padded to 4 bytes), raw float bias, weight scales, input scale."""
    weights = reads[0].values
    scales = table.weights.get(layer.name)
    scales = _channel_scales(layer, weights) if scales is None else np.asarray(scales, np.float32)
    channels = QUANTIZABLE[layer.kind].channels(layer)
    if scales.shape != (channels,):
        raise RtmwEdgeError(f"layer {layer.name}: the table has {scales.size} weight scales, the layer needs "
                            f"{channels}")
    quantized = _to_int8(weights, scales)
    return b"".join([TAG_INT8.to_bytes(4, "little"), quantized.tobytes(), bytes(-quantized.size % 4),
                     *(read.values.astype("<f4").tobytes() for read in reads[1:]),
                     scales.astype("<f4").tobytes(), np.float32(table.activations[layer.name]).tobytes()])


def _to_int8(weights: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """ncnn's float2int8 row by row: round(w * scale) half away from zero, clamped to [-127, 127]."""
    scaled = weights.astype(np.float32).reshape(scales.size, -1) * scales[:, None]
    whole = np.trunc(scaled)
    rounded = whole + np.where(np.abs(scaled - whole) >= 0.5, np.sign(scaled), 0)
    return np.clip(rounded, -INT8_MAX, INT8_MAX).astype(np.int8).ravel()


def _check_loads(param: Path, bin: Path) -> None:
    try:
        load_net(param, bin, int8=True)
    except RtmwEdgeError as exc:
        raise RtmwEdgeError(f"stock ncnn rejects the INT8 model just written ({exc}); nothing was saved") from exc


def quantize_ncnn(param: str | os.PathLike, bin: str | os.PathLike, crops: np.ndarray,
                  out_param: str | os.PathLike, out_bin: str | os.PathLike, method: str = "kl",
                  keep_float: Iterable[str] = (), threads: int | None = None, progress: bool = False,
                  overwrite: bool = False) -> dict:
    """Calibrate on `crops`, then write the INT8 model: ncnn2table followed by ncnn2int8."""
    table = Int8Table(weight_scales(param, bin), activation_scales(param, bin, crops, method, threads, progress))
    summary = write_int8(param, bin, table, out_param, out_bin, keep_float, overwrite=overwrite)
    return {**summary, "method": method, "calibration_crops": len(crops)}
