"""How far a 3D model's keypoints move between two runs (INT8 against FP32): the mean per-joint distance after
aligning their roots, in millimetres, on the whole body and per part (MPJPE with one run as the ground truth)."""

from __future__ import annotations

import numpy as np

from rtmw_edge.keypoints import PARTS

WHOLEBODY = "wholebody"


def root_aligned_drift_mm(reference: np.ndarray, test: np.ndarray, valid: np.ndarray,
                          root_keypoints: tuple[int, ...] | list[int]) -> dict[str, float]:
    """Mean distance (mm) between [N,133,3] metre keypoints, each person's root (the mean of `root_keypoints`)
    moved to the origin in both; only `valid` [N,133] keypoints count (a part with none scores 0)."""
    root = list(root_keypoints)
    ref = np.asarray(reference, np.float64)
    got = np.asarray(test, np.float64)
    ref = ref - ref[:, root].mean(axis=1, keepdims=True)
    got = got - got[:, root].mean(axis=1, keepdims=True)
    distance = np.linalg.norm(ref - got, axis=-1) * 1000.0
    spans = {WHOLEBODY: (0, distance.shape[1]), **PARTS}
    return {part: round(float(distance[:, lo:hi][valid[:, lo:hi]].mean()), 3) if valid[:, lo:hi].any() else 0.0
            for part, (lo, hi) in spans.items()}
