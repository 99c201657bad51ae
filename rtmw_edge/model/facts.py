"""Facts about each registered model, computed from the network itself (no weights needed)."""

from __future__ import annotations

from dataclasses import dataclass

from rtmw_edge.errors import require
from rtmw_edge.model.registry import MODELS, ModelSpec


@dataclass(frozen=True)
class ModelFacts:
    name: str
    alias: str | None
    input_hw: tuple[int, int]
    params_m: float
    gflops: float
    published_ap: float
    published_ar: float | None
    cached: bool
    published_mpjpe_m: float | None = None  # 3D models: H3WB MPJPE in metres


def model_facts(specs: tuple[ModelSpec, ...] = MODELS) -> list[ModelFacts]:
    """Params and MACs come from a shape-only (meta device) build, so listing costs no memory or time."""
    torch = require("torch", "export")
    from rtmw_edge.model.complexity import count_macs, count_params
    from rtmw_edge.model.rtmw import RTMW
    from rtmw_edge.model.weights import cached_checkpoint

    facts = []
    for spec in specs:
        with torch.device("meta"):
            model = RTMW(spec).eval()
        facts.append(ModelFacts(spec.name, spec.alias, spec.input_hw, count_params(model) / 1e6,
                                count_macs(model, spec.input_hw) / 1e9, spec.published_ap, spec.published_ar,
                                cached_checkpoint(spec) is not None, spec.published_mpjpe_m))
    return facts
