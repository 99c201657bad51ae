"""The detector every 5 frames with tracking against the detector on every frame, on a video of 5 people.

The clip is tests/clips.py's: five skiers of a ../shared photo under a panning, zooming window, written to an
mp4 and decoded on the reader thread as `rtmw-edge predict` does. Both pipelines share one Predictor (the same
pose runner) and one detector; each round runs a whole pass over the clip with `--det-every 1`, then with
`--det-every 5 --track`, so drift on a shared machine hits both alike. Defaults follow the intel-cpu device
profile: its first backend and precision for the pose model (INT8, made here from untrained weights with a
quick recipe), and the detector (default ../shared's trained RTMDet-nano) converted for that backend.

    python benchmarks/video_det_every.py [--pose POSE_ARTIFACT] [--detector ONNX_OR_ARTIFACT] [--threads N]
                                         [--rounds 5] [--frames 60] [--det-every 5] [--profile intel-cpu]

Target (the issue): `--det-every 5 --track` >= 1.8x the frames per second of `--det-every 1`. The gain is the
detector's share of a frame: the larger the detector against five pose crops, the larger the ratio. So the
detector alone and the pose batch alone are timed too (interleaved, on the clip's frames), and the ratio they
allow, 1 / (1 - share x (1 - 1/N)), is printed beside the measured one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from rtmw_edge import export, quantize
from rtmw_edge.bench.timing import interleaved_latency, speedup
from rtmw_edge.detector import open_detector
from rtmw_edge.machine import cpu_flags, cpu_name
from rtmw_edge.predictor import Predictor
from rtmw_edge.profiles import load_profile
from rtmw_edge.table import format_table
from rtmw_edge.video import FrameReader, PoseStream

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from clips import FIVE_PEOPLE, panning_zooming_clip, write_video  # noqa: E402  (tests/ is no package)
from pipeline_vs_rtmlib import QUICK_RECIPE  # noqa: E402

SHARED = ROOT.parent / "shared"
TARGET = 1.8
LEVEL = 0.95
FLAGS = ("avx2", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16")


def default_pose(scratch: Path, backend: str, precision: str, threads: int) -> Path:
    """The profile's preferred pose artifact from untrained weights: INT8 through the quantize pipeline."""
    if precision != "int8":
        return export("rtmw-m", backend, precision, weights="untrained", out=scratch / "pose").artifact.folder
    recipe = scratch / "quick.toml"
    recipe.write_text(QUICK_RECIPE)
    return quantize("rtmw-m", backend, weights="untrained", recipe=recipe, out=scratch / "q", threads=threads,
                    progress=False).int8.folder


def one_pass(stream: PoseStream, video: Path) -> Callable[[], None]:
    def run() -> None:
        stream.reset()
        with FrameReader(video) as reader:
            for frame in reader:
                stream(frame.image, frame.index)
    return run


def cost_split(predictor: Predictor, detector, frames: list[np.ndarray], rounds: int,
               warmup: int = 2) -> dict[str, float]:
    """Median seconds per frame of the detector alone and of the pose batch on its boxes, one after the other on
    successive frames of the clip."""
    times: dict[str, list[float]] = {"detector": [], "pose": []}
    for i in range(warmup + rounds):
        frame = frames[i % len(frames)]
        start = time.perf_counter()
        boxes = detector.detect(frame)
        found = time.perf_counter()
        predictor.predict(frame, boxes)
        if i >= warmup:
            times["detector"].append(found - start)
            times["pose"].append(time.perf_counter() - found)
    return {name: float(np.median(t)) for name, t in times.items()}


def median_interval(values: np.ndarray, level: float = LEVEL, resamples: int = 2000) -> tuple[float, float]:
    """Bootstrap interval of the median of `values`."""
    picks = np.random.default_rng(0).integers(0, len(values), (resamples, len(values)))
    medians = np.median(values[picks], axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(medians, [tail, 100.0 - tail])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pose", help="pose artifact (default: the profile's preferred one, made here)")
    parser.add_argument("--detector", default=str(SHARED / "models" / "rtmdet-nano.onnx"),
                        help="detector ONNX (converted for the profile's backend) or detector artifact")
    parser.add_argument("--profile", default="intel-cpu")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--det-every", type=int, default=5)
    args = parser.parse_args()
    profile = load_profile(args.profile)
    backend, precision = profile.backends[0], profile.precisions[0]
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        detector_path = Path(args.detector)
        if detector_path.suffix == ".onnx":
            detector_path = export(detector_path, backend, out=scratch / "detector").artifact.folder
        detector = open_detector(detector_path, threads=args.threads)
        pose = Path(args.pose) if args.pose else default_pose(scratch, backend, precision, args.threads)
        predictor = Predictor(pose, threads=args.threads)
        photo = cv2.imread(str(SHARED / "data" / "coco-wholebody-mini" / FIVE_PEOPLE))
        clip = panning_zooming_clip(photo, detector.detect(photo), args.frames)
        video = write_video(scratch / "five-people.mp4", clip.frames)
        every = PoseStream(predictor, det_every=1, detector=detector)
        tracked = PoseStream(predictor, det_every=args.det_every, track=True, detector=detector)
        people = [len(p) for p in (every(f) for f in clip.frames[:5])]
        labels = ["--det-every 1", f"--det-every {args.det_every} --track"]
        start = time.perf_counter()
        seconds = interleaved_latency({labels[0]: one_pass(every, video), labels[1]: one_pass(tracked, video)},
                                      runs=args.rounds, warmup=1, progress=True)
        wall = time.perf_counter() - start
        parts = cost_split(predictor, detector, clip.frames, rounds=3 * args.rounds)
    rows = []
    for label in labels:
        fps = args.frames / seconds[label]
        low, high = median_interval(fps)
        rows.append([label, f"{np.median(fps):.2f}", f"[{low:.2f}-{high:.2f}]",
                     f"{1000 / np.median(fps):.1f}", " ".join(f"{f:.2f}" for f in fps)])
    flags = cpu_flags()
    print(f"\npose: {predictor.artifact.meta.label}; detector: {detector_path.name} ({backend}); clip: "
          f"{args.frames} frames {clip.frames[0].shape[1]}x{clip.frames[0].shape[0]}, {max(people)} people; "
          f"{args.threads} threads; {args.rounds} interleaved rounds ({wall:.0f} s)")
    print(f"CPU: {cpu_name()} ({len(os.sched_getaffinity(0))} cores; "
          + ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in FLAGS) + ")")
    print(format_table(["pipeline", "fps (median)", f"{LEVEL:.0%} CI", "ms/frame", "fps per round"], rows))
    share = parts["detector"] / (parts["detector"] + parts["pose"])
    print(f"per frame (medians): detector {1000 * parts['detector']:.1f} ms, pose batch {1000 * parts['pose']:.1f} ms"
          f" -> the detector is {share:.0%} of a --det-every 1 frame; running it on 1 frame in {args.det_every} "
          f"allows at most {1 / (1 - share * (1 - 1 / args.det_every)):.2f}x")
    ratio, low, high = speedup(seconds[labels[0]], seconds[labels[1]], level=LEVEL)
    verdict = "met" if low >= TARGET else "met on the median only" if ratio >= TARGET else "NOT met"
    print(f"target: {labels[1]} >= {TARGET:.1f}x the fps of {labels[0]}: {verdict} ({ratio:.2f}x, "
          f"{LEVEL:.0%} paired bootstrap interval {low:.2f}-{high:.2f})")


if __name__ == "__main__":
    main()
