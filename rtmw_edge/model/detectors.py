"""Every person detector by name: OpenMMLab's ONNX SDK zip, input size, output layout, preprocessing, published AP.

All are mmdeploy end-to-end exports: input `input` [1,3,H,W], outputs `dets` [1,K,5] (x1, y1, x2, y2, score in
network-input pixels) and `labels` [1,K], the NMS inside the graph. They differ in preprocessing, which the
artifact's sidecar carries to `Detector`:
- RTMDet (mmdet's RTMDet config): BGR kept, mean (103.53, 116.28, 123.675), std (57.375, 57.12, 58.395).
- YOLOX (mmdet's YOLOX config, as trained on Human-Art): raw BGR pixels, no mean or std (its data preprocessor
  normalises nothing), padded with 114 like RTMDet.
Both letterbox: keep the aspect ratio, resize, pad bottom and right.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtmw_edge.errors import RtmwEdgeError

SDK_BASE_URL = "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
INPUT_NAME = "input"
OUTPUT_NAMES = ("dets", "labels")
PAD_VALUE = 114
RTMDET_MEAN_BGR = (103.53, 116.28, 123.675)
RTMDET_STD_BGR = (57.375, 57.12, 58.395)
RAW_PIXELS = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # (mean, std) of a network fed 0..255 pixels


@dataclass(frozen=True)
class DetectorSpec:
    """One registered person detector; `published_ap` is person box AP on `ap_dataset`, as OpenMMLab reports it."""

    name: str
    zip_name: str
    input_hw: tuple[int, int]
    mean_bgr: tuple[float, float, float]
    std_bgr: tuple[float, float, float]
    published_ap: float
    ap_dataset: str

    @property
    def url(self) -> str:
        return SDK_BASE_URL + self.zip_name

    @property
    def preprocessing(self) -> dict:
        """The sidecar's preprocessing section, which `Detector` applies."""
        return {"channel_order": "BGR", "mean": list(self.mean_bgr), "std": list(self.std_bgr),
                "letterbox_pad": PAD_VALUE, "layout": "NCHW"}


def _rtmdet(name: str, zip_name: str, size: int, ap: float) -> DetectorSpec:
    return DetectorSpec(name, zip_name, (size, size), RTMDET_MEAN_BGR, RTMDET_STD_BGR, ap, "COCO val2017 person")


def _yolox(name: str, zip_name: str, size: int, ap: float) -> DetectorSpec:
    return DetectorSpec(name, zip_name, (size, size), *RAW_PIXELS, ap, "Human-Art val")


DETECTORS: tuple[DetectorSpec, ...] = (
    _rtmdet("rtmdet-nano", "rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.zip", 320, 40.3),
    _rtmdet("rtmdet-m", "rtmdet_m_8xb32-100e_coco-obj365-person-235e8209.zip", 640, 62.5),
    _yolox("yolox-tiny", "yolox_tiny_8xb8-300e_humanart-6f3252f9.zip", 416, 47.7),
    _yolox("yolox-s", "yolox_s_8xb8-300e_humanart-3ef259a7.zip", 640, 54.6),
    _yolox("yolox-m", "yolox_m_8xb8-300e_humanart-c2c7a14a.zip", 640, 59.1),
)


def list_detectors() -> list[DetectorSpec]:
    return list(DETECTORS)


def find_detector(name: str) -> DetectorSpec | None:
    return next((spec for spec in DETECTORS if spec.name == name), None)


def get_detector(name: str) -> DetectorSpec:
    spec = find_detector(name)
    if spec is None:
        raise RtmwEdgeError(f"unknown detector '{name}' (known: {', '.join(s.name for s in DETECTORS)})")
    return spec
