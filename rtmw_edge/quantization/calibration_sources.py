"""Where calibration images come from: the shipped photos, a folder, one image, a video or a COCO JSON.

None is the public-domain photos shipped with the package (see calib_data/README.md); a folder is searched
recursively (hidden files left out, other files skipped and counted); a video gives `size` frames sampled evenly;
a COCO / COCO-WholeBody JSON gives its non-crowd person boxes, its images found by `file_name` in `images_dir`,
else in the JSON's folder. A source is a list of frames, each decoded only when needed, with the files whose bytes
decide the set (for the cache key) and the files passed over without decoding (for the description).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.evaluation.coco_wholebody import person_boxes, read_json
from rtmw_edge.media import IMAGE_SUFFIXES
from rtmw_edge.packaged import package_data

_SHIPPED_DOCS = frozenset({"README.md", "sources.toml"})
_SHOWN_NAMES = 3


@dataclass(frozen=True)
class Frame:
    name: str
    load: Callable[[], np.ndarray | None]  # BGR uint8, None when it cannot be decoded
    boxes: np.ndarray | None = None  # [K,4] x1,y1,x2,y2 person boxes known without the image (COCO JSON)


@dataclass(frozen=True)
class Source:
    label: str  # how messages name it
    frames: list[Frame]
    files: list[tuple[str, Path]]  # every file whose bytes decide the set, hashed into the cache key
    not_images: list[str]  # files passed over without decoding


def shipped_calibration_dir() -> Path:
    """The photos shipped for calibration: package data in a wheel, else calib_data/ of a source checkout."""
    return package_data("calib_data")


def open_source(source: str | Path | None, images_dir: str | Path | None, max_frames: int) -> Source:
    """Dispatch on what `source` is: nothing (the shipped photos), a folder, a JSON, an image or a video."""
    if source is None:
        return _folder(shipped_calibration_dir(), shipped=True)
    path = Path(source).expanduser()
    if not path.exists():
        raise RtmwEdgeError(f"calibration source {path} does not exist")
    if path.is_dir():
        return _folder(path)
    if path.suffix.lower() == ".json":
        return _coco(path, Path(images_dir).expanduser() if images_dir is not None else path.parent)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return Source(f"image {path}", [Frame(path.name, partial(_read_image, path))], [(path.name, path)], [])
    return _video(path, max_frames)


def _read_image(path: Path) -> np.ndarray | None:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def _folder(folder: Path, shipped: bool = False) -> Source:
    """Every image under `folder`, sorted; hidden files are left out, other files are skipped and counted."""
    images, others = [], []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if not path.is_file() or any(part.startswith(".") for part in name.split("/")):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.append((name, path))
        elif not (shipped and name in _SHIPPED_DOCS):
            others.append(name)
    if not images and not others:
        raise RtmwEdgeError(f"calibration folder {folder} is empty")
    if not images:
        raise RtmwEdgeError(f"no image in calibration folder {folder}: {skipped_text(others, [])}")
    label = "the shipped calibration photos" if shipped else f"folder {folder}"
    return Source(label, [Frame(name, partial(_read_image, path)) for name, path in images], images, others)


def _coco(path: Path, images_dir: Path) -> Source:
    """The JSON's images, each with its non-crowd person boxes; every image must be in `images_dir`."""
    data = read_json(path)
    try:
        images = [(img["id"], str(img["file_name"])) for img in data["images"]]
        boxes = person_boxes(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise RtmwEdgeError(f"{path} is not a COCO annotation file: it needs 'images' (id, file_name) and "
                            f"'annotations' (image_id, bbox) ({type(exc).__name__}: {exc})") from exc
    if not images:
        raise RtmwEdgeError(f"{path} lists no images")
    missing = [name for _, name in images if not (images_dir / name).is_file()]
    if missing:
        raise RtmwEdgeError(f"{path}: image {missing[0]} is not in {images_dir} ({len(missing)} of {len(images)} "
                            "images missing; pass the folder that holds them as images_dir)")
    no_box = np.zeros((0, 4), np.float32)
    frames = [Frame(name, partial(_read_image, images_dir / name), boxes.get(image_id, no_box))
              for image_id, name in images]
    return Source(str(path), frames, [(path.name, path), *((name, images_dir / name) for _, name in images)], [])


def _video(path: Path, max_frames: int) -> Source:
    """`max_frames` frames (all when fewer) spread evenly over the video."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise RtmwEdgeError(f"cannot open {path} as a video (nor is it a folder, an image or a COCO .json)")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if count <= 0:
        raise RtmwEdgeError(f"video {path} reports no frames")
    indices = np.unique(np.linspace(0, count - 1, min(count, max_frames)).round().astype(int)).tolist()
    reader = _VideoReader(path)
    frames = [Frame(f"{path.name}@{i}", partial(reader.frame, i)) for i in indices]
    return Source(f"video {path}", frames, [(path.name, path)], [])


class _VideoReader:
    """Frames by index, read forwards: seeking by frame number is not exact with every codec."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._capture: cv2.VideoCapture | None = None
        self._next = 0

    def frame(self, index: int) -> np.ndarray | None:
        if self._capture is None or index < self._next:
            self._capture, self._next = cv2.VideoCapture(str(self.path)), 0
        while self._next < index:
            if not self._capture.grab():
                return None
            self._next += 1
        ok, image = self._capture.read()
        self._next += 1
        return image if ok else None


def skipped_text(not_images: list[str], unreadable: list[str]) -> str:
    parts = [f"{len(names)} {why}, e.g. {', '.join(names[:_SHOWN_NAMES])}"
             for names, why in ((not_images, "not images"), (unreadable, "could not be decoded")) if names]
    total = len(not_images) + len(unreadable)
    return f"{total} file{'s' if total != 1 else ''} skipped ({'; '.join(parts)})"
