"""Predict on image files: one `predictions.json` for all of them and one `<stem>_pose.jpg` overlay each; a 3D
model also leaves a `<stem>_pose3d.png` view beside each overlay (where matplotlib is installed).

`predictions.json` holds COCO-WholeBody results (read by rtmw_edge.evaluation and xtcocotools) plus `file_name`,
`box` and `box_score`, and for a 3D model `keypoints_3d` and `depth`.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.media.inputs import ImageFile
from rtmw_edge.media.outputs import JsonArray, Outputs, Summary, person_record
from rtmw_edge.predictor import Predictor
from rtmw_edge.visualize import draw_persons, view_3d_png

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.json"
OVERLAY_FORMAT = ".jpg"
UNREADABLE = "cannot be read as an image"
VIEW_3D_SUFFIX = "_pose3d.png"


def wants_3d_views(predictor: Predictor) -> bool:
    """A 3D model's images get 3D views, where matplotlib (the `report` extra) is installed; else a warning."""
    if predictor.depth is None:
        return False
    if importlib.util.find_spec("matplotlib") is None:
        logger.warning("no 3D views: matplotlib is not installed (pip install 'rtmw-edge[report]'); predictions.json "
                       "still holds the 3D keypoints")
        return False
    return True


def image_outputs(images: Sequence[ImageFile], out_dir: Path, views_3d: bool = False) -> list[Path]:
    """The files `predict_images` writes: one overlay per image (and one 3D view each), then predictions.json."""
    if not images:
        return []
    overlays = [out_dir / name for name in _overlay_names([i.path for i in images])]
    views = [p.with_name(p.name.removesuffix(f"_pose{OVERLAY_FORMAT}") + VIEW_3D_SUFFIX) for p in overlays]
    return [*overlays, *(views if views_3d else []), out_dir / PREDICTIONS_FILE]


@dataclass(frozen=True)
class ImageJob:
    """One image of a run: where it is, its COCO id, where its overlay goes (and its 3D view, for a 3D model)."""

    image: ImageFile
    image_id: int
    overlay: Path
    view: Path | None = None


@dataclass(frozen=True)
class ImageResult:
    """What one image gives: its persons' result entries (JSON text each), its overlay (JPEG bytes) and, for a
    3D model, its 3D view (PNG bytes)."""

    records: list[str]
    overlay: bytes
    view: bytes | None = None


def image_jobs(images: Sequence[ImageFile], out_dir: Path, views_3d: bool = False) -> list[ImageJob]:
    *pictures, _ = image_outputs(images, out_dir, views_3d)
    overlays = pictures[:len(images)]
    views = pictures[len(images):] if views_3d else [None] * len(images)
    return [ImageJob(*job) for job in zip(images, _image_ids([i.path for i in images]), overlays, views,
                                          strict=True)]


def image_result(predictor: Predictor, image: np.ndarray, job: ImageJob, kpt_threshold: float) -> ImageResult:
    persons = predictor.predict(image)
    records = [json.dumps({**person_record(job.image_id, person), "file_name": job.image.path.name})
               for person in persons]
    view = view_3d_png(persons, kpt_threshold) if job.view is not None else None
    return ImageResult(records, _jpeg(draw_persons(image, persons, kpt_threshold), job.overlay), view)


def keep_result(outputs: Outputs, predictions: JsonArray, job: ImageJob, result: ImageResult,
                summary: Summary) -> None:
    """Write one image's overlay and append its entries: nothing of it stays in memory."""
    outputs.new_file(job.overlay).write_bytes(result.overlay)
    if job.view is not None and result.view is not None:
        outputs.new_file(job.view).write_bytes(result.view)
    predictions.extend(result.records)
    summary.images += 1
    summary.persons += len(result.records)


def check_some_read(images: Sequence[ImageFile], failed: Sequence[tuple[Path, str]], summary: Summary) -> None:
    """A run where no image could be read is an error; otherwise each skipped image is noted with why."""
    if len(failed) == len(images):
        raise RtmwEdgeError(f"none of the {len(images)} image files could be read (such as {failed[0][0]}): "
                            "nothing to predict")
    summary.skipped += [f"skipped {path}: {why}" for path, why in failed]


def predict_images(predictor: Predictor, images: Sequence[ImageFile], out_dir: Path, outputs: Outputs,
                   summary: Summary, kpt_threshold: float, progress: bool, views_3d: bool = False) -> None:
    predictions = outputs.new_json_array(out_dir / PREDICTIONS_FILE)
    unreadable: list[tuple[Path, str]] = []
    with logging_redirect_tqdm():
        for job in tqdm(image_jobs(images, out_dir, views_3d), desc="predict", unit="image", disable=not progress):
            image = cv2.imread(str(job.image.path), cv2.IMREAD_COLOR)
            if image is None:
                if job.image.named:
                    raise RtmwEdgeError(f"{job.image.path} cannot be read as an image (nor is its suffix a video's)")
                unreadable.append((job.image.path, UNREADABLE))
                continue
            keep_result(outputs, predictions, job, image_result(predictor, image, job, kpt_threshold), summary)
    check_some_read(images, unreadable, summary)


def _image_ids(files: Sequence[Path]) -> list[int]:
    """COCO's ids for files named by them (000000000785.jpg -> 785), else the next id no file name claims."""
    claimed = {int(f.stem) for f in files if f.stem.isdigit()}
    free = (i for i in itertools.count(1) if i not in claimed)
    return [int(f.stem) if f.stem.isdigit() else next(free) for f in files]


def _overlay_names(files: Sequence[Path]) -> list[str]:
    """`<stem>_pose.jpg`; files that share a stem (a.jpg, a.png) keep their suffix in it so none overwrites another."""
    stems = Counter(f.stem for f in files)
    return [f"{f.stem}_pose{OVERLAY_FORMAT}" if stems[f.stem] == 1 else f"{f.stem}_{f.suffix[1:]}_pose{OVERLAY_FORMAT}"
            for f in files]


def _jpeg(image: np.ndarray, path: Path) -> bytes:
    ok, encoded = cv2.imencode(OVERLAY_FORMAT, image)
    if not ok:
        raise RtmwEdgeError(f"OpenCV cannot encode {path.name}")
    return encoded.tobytes()
