"""RTMW in PyTorch, with state_dict names identical to mmpose's. The registry needs no torch."""

from __future__ import annotations

from rtmw_edge.errors import require
from rtmw_edge.model.registry import MODELS, ModelSpec, get_spec


def build_model(spec: ModelSpec):
    """An RTMW in eval mode with freshly initialised weights (load a checkpoint to make it useful)."""
    require("torch", "export")
    from rtmw_edge.model.rtmw import RTMW

    return RTMW(spec).eval()


__all__ = ["MODELS", "ModelSpec", "build_model", "get_spec"]
