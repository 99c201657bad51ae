"""Predict on image files: one `predictions.json` for all of them and one `<stem>_pose.jpg` overlay each.

`predictions.json` holds COCO-WholeBody results (read by rtmw_edge.evaluation and xtcocotools) plus `file_name`,
`box` and `box_score`.
"""

from __future__ import annotations

import itertools
import json
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
from rtmw_edge.visualize import draw_persons

PREDICTIONS_FILE = "predictions.json"
OVERLAY_FORMAT = ".jpg"
UNREADABLE = "cannot be read as an image"


def image_outputs(images: Sequence[ImageFile], out_dir: Path) -> list[Path]:
    """The files `predict_images` writes: one overlay per image, then predictions.json."""
    if not images:
        return []
    return [*(out_dir / name for name in _overlay_names([i.path for i in images])), out_dir / PREDICTIONS_FILE]


@dataclass(frozen=True)
class ImageJob:
    """One image of a run: where it is, its COCO id, and where its overlay goes."""

    image: ImageFile
    image_id: int
    overlay: Path


@dataclass(frozen=True)
class ImageResult:
    """What one image gives: its persons' result entries (JSON text each) and its overlay (JPEG bytes)."""

    records: list[str]
    overlay: bytes


def image_jobs(images: Sequence[ImageFile], out_dir: Path) -> list[ImageJob]:
    *overlays, _ = image_outputs(images, out_dir)
    return [ImageJob(*job) for job in zip(images, _image_ids([i.path for i in images]), overlays, strict=True)]


def image_result(predictor: Predictor, image: np.ndarray, job: ImageJob, kpt_threshold: float) -> ImageResult:
    persons = predictor.predict(image)
    records = [json.dumps({**person_record(job.image_id, person), "file_name": job.image.path.name})
               for person in persons]
    return ImageResult(records, _jpeg(draw_persons(image, persons, kpt_threshold), job.overlay))


def keep_result(outputs: Outputs, predictions: JsonArray, job: ImageJob, result: ImageResult,
                summary: Summary) -> None:
    """Write one image's overlay and append its entries: nothing of it stays in memory."""
    outputs.new_file(job.overlay).write_bytes(result.overlay)
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
                   summary: Summary, kpt_threshold: float, progress: bool) -> None:
    predictions = outputs.new_json_array(out_dir / PREDICTIONS_FILE)
    unreadable: list[tuple[Path, str]] = []
    with logging_redirect_tqdm():
        for job in tqdm(image_jobs(images, out_dir), desc="predict", unit="image", disable=not progress):
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
