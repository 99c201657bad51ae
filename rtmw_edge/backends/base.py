"""The contract every inference backend implements, so nothing above it ever branches on the backend."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


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
