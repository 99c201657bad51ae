"""Is our pre/post-processing negligible next to the pose network? Per-person cost on this machine.

Measures crop+normalise, decode+to_image, the flip test's extra work (mirror + merge) and the whole
Predictor.predict() against the network's own time (ORT FP32 rtmw-m, a batch of persons), with the stages
interleaved in every repetition so that load from other processes hits them alike. Target: pre+post < 5%.

    python benchmarks/prepost_cost.py [--model ARTIFACT] [--persons 5] [--threads 2] [--repeats 20]

Without --model an untrained rtmw-m ONNX artifact is exported into a temporary folder (timing does not depend
on the weights).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rtmw_edge import topdown
from rtmw_edge.exporter import export_model
from rtmw_edge.predictor import Predictor

IMAGE_HW = (480, 640)
TARGET_RATIO = 0.05


def boxes_for(persons: int, image_hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Deterministic person-shaped boxes inside the image (crop cost depends on box count, not content)."""
    rng = np.random.default_rng(seed)
    height, width = image_hw
    sizes = rng.uniform(0.2, 0.6, (persons, 1)) * np.array([width * 0.5, height])
    corners = rng.uniform(0, 1, (persons, 2)) * (np.array([width, height]) - sizes)
    return np.hstack([corners, corners + sizes]).astype(np.float32)


def measure(predictor: Predictor, image: np.ndarray, boxes: np.ndarray, repeats: int) -> dict[str, list[float]]:
    """Seconds per stage for each repetition; every repetition runs each stage once, in the same order."""
    hw, ratio, flips = predictor.input_hw, predictor.split_ratio, predictor.flip_indices
    crops = topdown.crop(image, boxes, hw)
    simcc_x, simcc_y = predictor.runner.run(crops.batch)
    stages: dict[str, Callable[[], object]] = {
        "pre: crop + normalise": lambda: topdown.crop(image, boxes, hw),
        "model": lambda: predictor.runner.run(crops.batch),
        "post: decode + to_image": lambda: topdown.to_image(topdown.decode(simcc_x, simcc_y, ratio)[0],
                                                            crops.centers, crops.scales, hw),
        "flip extra: mirror + merge": lambda: (topdown.flip_batch(crops.batch),
                                               topdown.merge_flip(simcc_x, simcc_y, simcc_x, simcc_y, flips)),
        "Predictor.predict (no flip)": lambda: predictor.predict(image, boxes),
    }
    times: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(repeats):
        for name, stage in stages.items():
            start = time.perf_counter()
            stage()
            times[name].append(time.perf_counter() - start)
    return times


def report(times: dict[str, list[float]], persons: int, label: str, threads: int, repeats: int) -> None:
    ms = {name: statistics.median(values) * 1e3 / persons for name, values in times.items()}
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {label}; batch of {persons} persons, "
          f"{threads} threads, {repeats} interleaved repetitions; medians per person")
    for name, value in ms.items():
        print(f"  {name:<30} {value:9.3f} ms")
    model = ms["model"]
    prepost = ms["pre: crop + normalise"] + ms["post: decode + to_image"]
    overhead = ms["Predictor.predict (no flip)"] - model
    flip = prepost + ms["flip extra: mirror + merge"]
    print(f"  pre+post / model               {prepost / model:9.2%}   (target < {TARGET_RATIO:.0%})")
    print(f"  pre+post+flip extra / 2x model {flip / (2 * model):9.2%}")
    print(f"  predict() - model / model      {overhead / model:9.2%}   (all Predictor work: checks, boxes, Person)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="pose artifact (default: export an untrained rtmw-m ONNX to a temp folder)")
    parser.add_argument("--persons", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    image = np.random.default_rng(0).integers(0, 256, (*IMAGE_HW, 3), dtype=np.uint8)
    boxes = boxes_for(args.persons, IMAGE_HW)
    with tempfile.TemporaryDirectory() as scratch:
        model = Path(args.model) if args.model else export_model("rtmw-m", "onnx", weights="untrained",
                                                                 out_dir=scratch, progress=False)[0].folder
        predictor = Predictor(model, threads=args.threads)
        predictor.predict(image, boxes)  # warm-up: first runs allocate
        times = measure(predictor, image, boxes, args.repeats)
        report(times, args.persons, predictor.artifact.meta.label, args.threads, args.repeats)


if __name__ == "__main__":
    main()
