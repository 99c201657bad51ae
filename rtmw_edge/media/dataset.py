"""`predict --ray`: images and folders of images predicted on Ray Data, for datasets one machine is too slow for.

The images are a dataset of paths; `map_batches` runs `PoseActor`, which loads the Predictor once per actor, on
`concurrency` actors of `threads` CPU threads each (the device profile's `[ray]` table). The driver takes the
results in input order and writes them as the plain run does (rtmw_edge.media.images), so `predictions.json`
is the same file byte for byte. An image that fails is recorded and skipped; an actor that dies is restarted by
Ray and its batch run again (Ray Data's own fault tolerance: restarts and retries without limit), so the output
is still complete.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.media.images import (
    PREDICTIONS_FILE,
    UNREADABLE,
    ImageJob,
    ImageResult,
    check_some_read,
    image_jobs,
    image_outputs,
    image_result,
)
from rtmw_edge.media.images import keep_result as keep_image_result
from rtmw_edge.media.inputs import ImageFile, collect_inputs
from rtmw_edge.media.outputs import Outputs, Summary
from rtmw_edge.predictor import Predictor
from rtmw_edge.profiles import Profile
from rtmw_edge.resolve import AUTO, machine_profile
from rtmw_edge.wholebody import PredictorSetup, predictor_setup

logger = logging.getLogger(__name__)
RAY_MISSING = "Ray is not installed: pip install 'rtmw-edge[ray]'"


class PoseActor:
    """One Ray actor: its Predictor is made once, then each batch of rows gives records and overlays."""

    def __init__(self, setup: PredictorSetup, kpt_threshold: float) -> None:
        self.predictor: Predictor = setup.open()
        self.kpt_threshold = kpt_threshold

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"records": [], "overlay": [], "error": []}
        for path, image_id, overlay in zip(batch["path"], batch["image_id"], batch["overlay"], strict=True):
            job = ImageJob(ImageFile(Path(path), named=False), int(image_id), Path(overlay))
            result, error = self.predict(job)
            out["records"].append(result.records)
            out["overlay"].append(result.overlay)
            out["error"].append(error)
        return out

    def predict(self, job: ImageJob) -> tuple[ImageResult, str]:
        """The image's result, or why it failed: one bad image must not stop a dataset."""
        try:
            image = cv2.imread(str(job.image.path), cv2.IMREAD_COLOR)
            if image is None:
                return ImageResult([], b""), UNREADABLE
            return image_result(self.predictor, image, job, self.kpt_threshold), ""
        except Exception as exc:  # any failure of one image is its record, never the run's end
            return ImageResult([], b""), f"{type(exc).__name__}: {exc}".splitlines()[0]


def predict_dataset(paths: Sequence[str | Path], artifact: str | Path = "rtmw-m", out: str | Path = "predict-out",
                    *, backend: str | None = None, precision: str = "fp32", detector: str | Path | None = AUTO,
                    address: str | None = None, profile: str | Path | Profile | None = None,
                    concurrency: int | None = None, threads: int | None = None, device: str | None = None,
                    flip_test: bool = False, camera: tuple[float, float, float, float] | None = None,
                    kpt_threshold: float = 0.3, overwrite: bool = False, progress: bool = False,
                    actor: type[PoseActor] = PoseActor) -> Summary:
    """Predict on images and folders of images on Ray: the same outputs as `rtmw-edge predict` without it.

    `artifact` is a pose artifact or a registered name (resolved here, once, as `Wholebody` does), `address` a Ray
    cluster (default: the one already initialised, else $RAY_ADDRESS, else a local Ray); `camera` (fx, fy, cx, cy)
    places a 3D model's keypoints, whose fields the JSON carries (3D views are drawn only without Ray);
    `concurrency` (actors) and `threads` (per actor) default to the device profile's `[ray]`. `actor` is the class
    each actor runs: a subclass of PoseActor may add to what an image gives, or (in the tests) die once to show
    Ray's retry.
    """
    ray = _import_ray()
    inputs = collect_inputs(paths)
    streams = [*inputs.videos, *([] if inputs.camera is None else [f"camera {inputs.camera}"])]
    if streams:
        raise RtmwEdgeError(f"--ray predicts images and folders of images; {streams[0]} is a video stream: "
                            "predict it without --ray")
    profile = machine_profile(profile)
    plan = profile.ray
    threads = threads or plan.threads
    setup = predictor_setup(artifact, backend, precision, detector, profile, threads, device, flip_test,
                            progress=progress, camera=camera)
    out_dir = Path(out)
    summary = Summary(out_dir, *setup.described, skipped=list(inputs.skipped))
    jobs = image_jobs(inputs.images, out_dir)
    with Outputs(image_outputs(inputs.images, out_dir), overwrite) as outputs, _ray_session(ray, address):
        actors = _actors(ray, concurrency or plan.concurrency, threads)
        predictions = outputs.new_json_array(out_dir / PREDICTIONS_FILE)
        failed: list[tuple[Path, str]] = []
        results = _results(ray, actor, jobs, setup, kpt_threshold, actors, threads, plan.batch, progress)
        for job, row in zip(jobs, results, strict=True):
            if row["error"]:
                failed.append((job.image.path, row["error"]))
            else:
                keep_image_result(outputs, predictions, job, ImageResult(list(row["records"]), row["overlay"]),
                                  summary)
        check_some_read(inputs.images, failed, summary)
    for note in summary.skipped:
        logger.warning("%s", note)
    return summary


def _results(ray, actor: type[PoseActor], jobs: Sequence[ImageJob], setup: PredictorSetup, kpt_threshold: float,
             actors: int, threads: int, batch: int, progress: bool) -> Iterator[dict]:
    """The actors' rows, in the order of `jobs`."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = progress
    rows = ray.data.from_items([{"path": str(j.image.path), "image_id": j.image_id, "overlay": str(j.overlay)}
                                for j in jobs], override_num_blocks=-(-len(jobs) // batch))  # a task per batch
    done = rows.map_batches(actor, fn_constructor_args=(setup, kpt_threshold), batch_size=batch,
                            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=threads)
    try:
        yield from done.iter_rows()
    except ray.exceptions.RayError as exc:
        raise RtmwEdgeError(f"the Ray run failed: {str(exc).strip().splitlines()[0]}") from None


def _actors(ray, wanted: int, threads: int) -> int:
    """`wanted` actors, or as many as the cluster's CPUs hold at `threads` each (Ray would wait forever)."""
    fits = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
    if fits < wanted:
        logger.info("the Ray cluster holds %d actors of %d threads, not %d: running %d", fits, threads, wanted, fits)
    return min(wanted, fits)


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise RtmwEdgeError(RAY_MISSING) from None
    return ray


@contextlib.contextmanager
def _ray_session(ray, address: str | None) -> Iterator[None]:
    """The Ray already initialised in this process, else one joined (or started locally) for this run only."""
    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=address or None, include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise RtmwEdgeError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from None
    try:
        yield
    finally:
        ray.shutdown()
