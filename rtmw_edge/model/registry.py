"""Every RTMW variant by name: architecture numbers, input size, codec, official checkpoint, official ONNX and facts.

RTMW3D (`depth` set) is the same network with one more classifier, `head.cls_z`, for a root-relative depth.

The official ONNX files are mmdeploy's end-to-end exports in OpenMMLab's SDK zips (the ones rtmlib uses): input
`input` [N,3,H,W] (normalised RGB, as ours), outputs `simcc_x` [N,133,2W] and `simcc_y` [N,133,2H], no
preprocessing or decoding inside. rtmw-m's is the `rtmw-dw-l-m` zip (mmpose's README links a `-dw-m-s` name that
rtmlib does not use); rtmw-x has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtmw_edge.errors import RtmwEdgeError

CHECKPOINT_BASE_URL = "https://download.openmmlab.com/mmpose/v1/projects/rtmw/"
ONNX_SDK_BASE_URL = CHECKPOINT_BASE_URL + "onnx_sdk/"
RTMW3D_BASE_URL = "https://download.openmmlab.com/mmpose/v1/wholebody_3d_keypoint/rtmw3d/"


@dataclass(frozen=True)
class DepthCodec:
    """RTMW3D's z axis as mmpose's SimCC3DLabel codes it, and the constants that lift it to camera space.

    z (0..input_depth after the split ratio) -> root-relative metres `(z / (input_depth / 2) - 1) * z_range`;
    camera space adds `root_z` (the training set's mean root depth) and uses `focal` when no camera is given.
    """

    input_depth: int = 288
    sigma: float = 6.0
    z_range: float = 2.1744869
    root_z: float = 5.14388
    focal: tuple[float, float] = (1145.04940459, 1143.78109572)
    root_keypoints: tuple[int, ...] = (11, 12)  # the root is the mean of the hips


@dataclass(frozen=True)
class ModelSpec:
    """One registered model. `input_hw` is (height, width) of the network input."""

    name: str
    alias: str | None
    deepen: float
    widen: float
    input_hw: tuple[int, int]
    sigma: tuple[float, float]
    checkpoint: str
    published_ap: float
    published_ar: float | None  # OpenMMLab publishes no AR for RTMW3D
    onnx_sdk: str | None = None  # the official ONNX SDK zip, when OpenMMLab publishes one
    split_ratio: float = 2.0
    num_keypoints: int = 133
    depth: DepthCodec | None = None  # set for a 3D model (RTMW3D)
    published_mpjpe_m: float | None = None  # H3WB MPJPE in metres, for a 3D model
    checkpoint_base: str = CHECKPOINT_BASE_URL

    @property
    def url(self) -> str:
        return self.checkpoint_base + self.checkpoint

    @property
    def z_bins(self) -> int | None:
        """Bins of the z classifier (cls_z), None for a 2D model."""
        return int(self.depth.input_depth * self.split_ratio) if self.depth else None

    @property
    def onnx_sdk_url(self) -> str | None:
        return ONNX_SDK_BASE_URL + self.onnx_sdk if self.onnx_sdk else None

    @property
    def sha256_prefix(self) -> str | None:
        """OpenMMLab names a file `...-<first 8 hex of its sha256>_<date>.pth`; older RTMW files carry none."""
        stem = self.checkpoint.rsplit(".", 1)[0]
        head = stem.rsplit("_", 1)[0]
        candidate = head.rsplit("-", 1)[-1]
        if len(candidate) == 8 and all(c in "0123456789abcdef" for c in candidate):
            return candidate
        return None

    @property
    def channels(self) -> tuple[int, int, int]:
        """Backbone output channels at strides 8, 16, 32."""
        return tuple(int(c * self.widen) for c in (256, 512, 1024))


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("rtmw-m-256x192", "rtmw-m", 0.67, 0.75, (256, 192), (4.9, 5.66),
              "rtmw-dw-l-m_simcc-cocktail14_270e-256x192-20231122.pth", 58.2, 67.3,
              "rtmw-dw-l-m_simcc-cocktail14_270e-256x192_20231122.zip"),
    ModelSpec("rtmw-l-256x192", "rtmw-l", 1.0, 1.0, (256, 192), (4.9, 5.66),
              "rtmw-dw-x-l_simcc-cocktail14_270e-256x192-20231122.pth", 66.0, 74.6,
              "rtmw-dw-x-l_simcc-cocktail14_270e-256x192_20231122.zip"),
    ModelSpec("rtmw-x-256x192", "rtmw-x", 1.33, 1.25, (256, 192), (4.9, 5.66),
              "rtmw-x_simcc-cocktail14_pt-ucoco_270e-256x192-13a2546d_20231208.pth", 67.2, 75.2),
    ModelSpec("rtmw-l-384x288", None, 1.0, 1.0, (384, 288), (6.0, 6.93),
              "rtmw-dw-x-l_simcc-cocktail14_270e-384x288-20231122.pth", 70.1, 78.0,
              "rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.zip"),
    ModelSpec("rtmw-x-384x288", None, 1.33, 1.25, (384, 288), (6.0, 6.93),
              "rtmw-x_simcc-cocktail14_pt-ucoco_270e-384x288-f840f204_20231122.pth", 70.2, 78.1),
    ModelSpec("rtmw3d-l-384x288", "rtmw3d-l", 1.0, 1.0, (384, 288), (6.0, 6.93),
              "rtmw3d-l_8xb64_cocktail14-384x288-794dbc78_20240626.pth", 67.8, None, depth=DepthCodec(),
              published_mpjpe_m=0.056, checkpoint_base=RTMW3D_BASE_URL),
    ModelSpec("rtmw3d-x-384x288", "rtmw3d-x", 1.33, 1.25, (384, 288), (6.0, 6.93),
              "rtmw3d-x_8xb64_cocktail14-384x288-b0a0eab7_20240626.pth", 68.0, None, depth=DepthCodec(),
              published_mpjpe_m=0.057, checkpoint_base=RTMW3D_BASE_URL),
)


def list_models() -> list[ModelSpec]:
    """Every registered model, smallest first."""
    return list(MODELS)


def find_spec(name: str) -> ModelSpec | None:
    """The model registered under this full name or short alias, None when there is none."""
    return next((spec for spec in MODELS if name in (spec.name, spec.alias)), None)


def get_spec(name: str) -> ModelSpec:
    """Look a model up by its full name or short alias."""
    spec = find_spec(name)
    if spec is not None:
        return spec
    known = ", ".join(sorted({s.name for s in MODELS} | {s.alias for s in MODELS if s.alias}))
    raise RtmwEdgeError(f"unknown model '{name}' (known: {known})")
