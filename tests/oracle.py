"""Rebuild the oracle's weights exactly as ../shared/spec/oracle.md describes, and find the shared data."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
ORACLE_DIR = SHARED / "oracle"
MINI_DIR = SHARED / "data" / "coco-wholebody-mini"
MODELS_DIR = SHARED / "models"


def need(path: Path) -> Path:
    """Skip the calling test, saying why, when a file from ../shared is absent (a user's clone)."""
    if not path.exists():
        pytest.skip(f"{path} is not here: this test needs the project's ../shared folder")
    return path


def oracle_npz(name: str) -> np.lib.npyio.NpzFile:
    return np.load(need(ORACLE_DIR / f"{name}.npz"))


def oracle_state_dict(npz: np.lib.npyio.NpzFile) -> dict[str, np.ndarray]:
    """Each tensor is a pure function of its key and shape, except BN statistics stored in the npz."""
    out = {}
    for key, shape_text in zip(npz["state_dict_keys"], npz["state_dict_shapes"], strict=True):
        shape = tuple(int(s) for s in shape_text.split(",")) if shape_text else ()
        out[str(key)] = _tensor(str(key), shape, npz).astype(np.float32) if not key.endswith(
            "num_batches_tracked") else np.asarray(npz[f"bn/{key}"])
    return out


def _tensor(name: str, shape: tuple[int, ...], npz) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    if name.endswith(("running_mean", "running_var")):
        return np.asarray(npz[f"bn/{name}"])
    if name.endswith(".bn.weight"):
        return rng.uniform(0.75, 1.25, shape)
    if name.endswith(".bias"):
        return rng.normal(0.0, 0.05, shape)
    if len(shape) >= 2:
        bound = 1.0 / np.sqrt(np.prod(shape[1:]))
        return rng.uniform(-bound, bound, shape)
    if name.endswith("gamma"):
        return rng.uniform(0.5, 1.5, shape)
    if name.endswith("beta"):
        return rng.normal(0.0, 0.1, shape)
    return 1.0 + rng.normal(0.0, 0.1, shape)
