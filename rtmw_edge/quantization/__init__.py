"""INT8 post-training quantization: calibration data, and the accuracy gate that decides whether INT8 ships.

`quantize(model, backend, calibration)` is the whole job; it returns a `QuantizeResult`. Both are loaded on first
use, so importing a helper module of this package (groups, cpu, ...) stays cheap and free of import cycles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtmw_edge.quantization.pipeline import QuantizeResult, quantize

__all__ = ["QuantizeResult", "quantize"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from rtmw_edge.quantization import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
