"""Latency measured the fair way on a shared machine: runs interleaved across models (A B C, C A B, ...), each
round in a new order: a call can slow the one after it (most likely a runtime whose threads spin for a while after
a call), and in a fixed order that would always hit the same one (measured: the same INT8 network took 109.4 ms
right after such a runtime, where the whole pipeline around it took 96.2 ms elsewhere in the round)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
from tqdm import tqdm


def interleaved_latency(calls: Mapping[str, Callable[[], object]], runs: int = 20, warmup: int = 2,
                        progress: bool = False, desc: str = "benchmark", seed: int = 0) -> dict[str, np.ndarray]:
    """Seconds per call for each entry, after warm-up, measured in alternation so drift hits all equally; the
    order within each round is a seeded shuffle, so no entry always follows the same neighbour."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    order = np.random.default_rng(seed)
    for _ in tqdm(range(runs), desc=desc, disable=not progress, leave=False):
        for index in order.permutation(len(names)):
            start = time.perf_counter()
            calls[names[index]]()
            times[names[index]].append(time.perf_counter() - start)
    return {name: np.asarray(t) for name, t in times.items()}


def percentiles_ms(seconds: np.ndarray, per: int = 1) -> dict[str, float]:
    """Median, p90 and p99 in milliseconds per item (a batch of `per` items divides its time)."""
    ms = np.asarray(seconds, np.float64) * 1000.0 / per
    return {f"p{q}": float(np.percentile(ms, q)) for q in (50, 90, 99)}


def speedup(baseline: np.ndarray, other: np.ndarray, level: float = 0.95, resamples: int = 2000,
            seed: int = 0) -> tuple[float, float, float]:
    """Baseline median / other median, with a paired bootstrap interval over the interleaved rounds.

    Round i of both series ran back to back, so resampling rounds (not single runs) keeps the load they shared:
    the interval shows how much the ratio itself moved, which a spread of either series alone would overstate.
    """
    baseline, other = np.asarray(baseline, np.float64), np.asarray(other, np.float64)
    if baseline.shape != other.shape or baseline.ndim != 1 or not len(baseline):
        raise ValueError(f"want two equal, non-empty run lists, got {baseline.shape} and {other.shape}")
    rounds = np.random.default_rng(seed).integers(0, len(baseline), (resamples, len(baseline)))
    ratios = np.median(baseline[rounds], axis=1) / np.median(other[rounds], axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(ratios, [tail, 100.0 - tail])
    return float(np.median(baseline) / np.median(other)), float(low), float(high)
