"""rtmw-edge: RTMW whole-body pose estimation on edge devices, fast, small and as accurate as the float model.

The public API is what the `rtmw-edge` command itself calls:

    import rtmw_edge
    pose = rtmw_edge.Wholebody("rtmw-m", backend="openvino")     # names: fetched, converted, cached on first use
    persons = pose(frame_bgr)                                     # [Person]: 133 keypoints each

    rtmw_edge.export("rtmw-m", "openvino")                       # a verified artifact in exports/
    predictor = rtmw_edge.Predictor("exports/rtmw-m-256x192-openvino-fp32")

Names are imported on first use, so `import rtmw_edge` stays light (no runtime, no torch).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_API: dict[str, str] = {
    "Wholebody": "rtmw_edge.wholebody",
    "Predictor": "rtmw_edge.predictor",
    "Person": "rtmw_edge.predictor",
    "PoseStream": "rtmw_edge.video",
    "predict_dataset": "rtmw_edge.media.dataset",
    "Detector": "rtmw_edge.detector",
    "export": "rtmw_edge.exporter",
    "Exported": "rtmw_edge.exporter",
    "quantize": "rtmw_edge.quantization",
    "QuantizeResult": "rtmw_edge.quantization",
    "load_artifact": "rtmw_edge.artifact",
    "Artifact": "rtmw_edge.artifact",
    "list_models": "rtmw_edge.model.registry",
    "list_detectors": "rtmw_edge.model.detectors",
    "BACKENDS": "rtmw_edge.backends",
    "RtmwEdgeError": "rtmw_edge.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'rtmw_edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
