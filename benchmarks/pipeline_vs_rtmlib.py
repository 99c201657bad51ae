"""Our pipeline against what a user would otherwise pick: rtmlib-style FP32 ONNX Runtime, one person at a time.

The baseline is written here, not imported: per box, its own simple preprocessing (centre and scale padded 1.25,
an affine warp to the input, BGR->RGB, (x - mean) / std in float64 as numpy promotes it), one ONNX Runtime call
per person, SimCC argmax. Ours: the INT8 artifact (default: OpenVINO INT8 made by `quantize()` with untrained
weights in a temporary folder), every person of the frame in one batch through `Predictor`; and, to show where
the gain comes from, our Predictor on the baseline's own FP32 ONNX. Same model (rtmw-m), same frame, same
ground-truth boxes (no detector), same thread count; the three run interleaved, round after round.

    python benchmarks/pipeline_vs_rtmlib.py [--ours INT8_ARTIFACT] [--onnx FP32_ONNX_ARTIFACT] [--threads N]
                                            [--rounds 20] [--people 5] [--gt COCO_WHOLEBODY_JSON]

Target (the issue): ours >= 2x the baseline's frames per second on a frame with 5 people.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from rtmw_edge.artifact import load_artifact
from rtmw_edge.bench.timing import interleaved_latency, speedup
from rtmw_edge.exporter import export_model
from rtmw_edge.machine import cpu_name
from rtmw_edge.predictor import Predictor
from rtmw_edge.quantization import quantize
from rtmw_edge.table import format_table

MINI_GT = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco-wholebody-mini" / "example_wholebody_val.json"
TARGET = 2.0
# Calibration size changes accuracy, not speed: a small set keeps the default INT8 quick to make.
QUICK_RECIPE = "[calibration]\nsize = 64\n[quantizer]\nsubset_size = 64\n"


class RtmlibStyle:
    """rtmlib's RTMPose loop: each person preprocessed, run and decoded on its own, FP32 ONNX Runtime."""

    MEAN = np.array([123.675, 116.28, 103.53])
    STD = np.array([58.395, 57.12, 57.375])

    def __init__(self, onnx_path: Path, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # rtmlib leaves the default; pinned so both sides get the same cores
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.height, self.width = model_input.shape[2:]

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self._one(image, box) for box in boxes]

    def _one(self, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        center = (box[:2] + box[2:4]) / 2
        w, h = (box[2:4] - box[:2]) * 1.25
        w, h = max(w, h * self.width / self.height), max(h, w * self.height / self.width)  # the input's aspect
        zoom = self.width / w
        warp = np.array([[zoom, 0, self.width / 2 - zoom * center[0]], [0, zoom, self.height / 2 - zoom * center[1]]])
        crop = cv2.warpAffine(image, warp, (self.width, self.height), flags=cv2.INTER_LINEAR)
        crop = (crop[..., ::-1] - self.MEAN) / self.STD
        batch = np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32)[None]
        simcc_x, simcc_y = self.session.run(None, {self.input_name: batch})[:2]
        split_x, split_y = simcc_x.shape[2] / self.width, simcc_y.shape[2] / self.height
        xy = np.stack([simcc_x[0].argmax(1) / split_x, simcc_y[0].argmax(1) / split_y], axis=1)
        scores = np.minimum(simcc_x[0].max(1), simcc_y[0].max(1))
        return xy / zoom + center - np.array([w, h]) / 2, scores


def frame_with_people(gt_json: Path, people: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The first image of the ground truth with at least `people` persons, and `people` of their boxes."""
    data = json.loads(gt_json.read_text())
    for image in data["images"]:
        boxes = [a["bbox"] for a in data["annotations"] if a["image_id"] == image["id"]]
        if len(boxes) >= people:
            xywh = np.array(boxes[:people], np.float32)
            frame = cv2.imread(str(gt_json.parent / image["file_name"]))
            return frame, np.hstack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]), image["file_name"]
    raise SystemExit(f"no image of {gt_json} has {people} people")


def default_artifacts(scratch: Path, threads: int) -> tuple[Path, Path]:
    """Untrained OpenVINO INT8 (through the quantize pipeline) and the FP32 ONNX of the same weights."""
    recipe = scratch / "quick.toml"
    recipe.write_text(QUICK_RECIPE)
    result = quantize("rtmw-m", "openvino", weights="untrained", recipe=recipe, out=scratch / "q", threads=threads,
                      progress=False)
    onnx = export_model("rtmw-m", "onnx", "fp32", weights="untrained", out_dir=scratch / "onnx", progress=False)[0]
    return result.int8.folder, onnx.folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", help="INT8 pose artifact (default: OpenVINO INT8 made in a temporary folder)")
    parser.add_argument("--onnx", help="FP32 ONNX pose artifact of the same model, for the baseline")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--gt", type=Path, default=MINI_GT, help="COCO-WholeBody JSON with its images beside it")
    args = parser.parse_args()
    if (args.ours is None) != (args.onnx is None):
        parser.error("give both --ours and --onnx, or neither")
    image, boxes, name = frame_with_people(args.gt, args.people)
    with tempfile.TemporaryDirectory() as scratch:
        ours_path, onnx_path = ((Path(args.ours), Path(args.onnx)) if args.ours
                                else default_artifacts(Path(scratch), args.threads))
        onnx = load_artifact(onnx_path)
        baseline = RtmlibStyle(onnx.main_path, args.threads)
        ours_fp32 = Predictor(onnx.folder, threads=args.threads)
        ours = Predictor(ours_path, threads=args.threads)
        check_same_work(baseline, ours_fp32, image, boxes)
        pipelines = {
            f"rtmlib-style: {onnx.meta.label}, one person per call": lambda: baseline(image, boxes),
            f"ours: {onnx.meta.label}, one batch": lambda: ours_fp32.predict(image, boxes),
            f"ours: {ours.artifact.meta.label}, one batch": lambda: ours.predict(image, boxes),
        }
        times = interleaved_latency(pipelines, runs=args.rounds, warmup=3, progress=True)
    report(times, name, image, len(boxes), args)


def check_same_work(baseline: RtmlibStyle, ours: Predictor, image: np.ndarray, boxes: np.ndarray) -> None:
    """The baseline must compute what our FP32 pipeline computes, or the comparison says nothing."""
    theirs = np.stack([xy for xy, _ in baseline(image, boxes)])
    mine = np.stack([p.keypoints for p in ours.predict(image, boxes)])
    distance = np.linalg.norm(theirs - mine, axis=-1)
    print(f"baseline vs our pipeline on the same FP32 ONNX: keypoints within 2 px: {np.mean(distance <= 2):.1%}, "
          f"median distance {np.median(distance):.2f} px")


def report(times: dict[str, np.ndarray], name: str, image: np.ndarray, people: int,
           args: argparse.Namespace) -> None:
    labels = list(times)
    base = times[labels[0]]
    rows = []
    for label in labels:
        ratio, low, high = speedup(base, times[label])
        median = float(np.median(times[label]))
        rows.append([label, f"{median * 1000:.1f}", f"{1 / median:.2f}", f"{ratio:.2f}x [{low:.2f}-{high:.2f}]"])
    print(f"\n{name} ({image.shape[1]}x{image.shape[0]}), {people} people from ground-truth boxes (no detector); "
          f"{args.threads} threads; {args.rounds} interleaved rounds; {cpu_name()}, "
          f"{len(os.sched_getaffinity(0))} cores")
    print(format_table(["pipeline", "ms/frame (median)", "FPS", "vs baseline [95% CI]"], rows))
    ratio, low, high = speedup(base, times[labels[-1]])
    verdict = "met" if low >= TARGET else "met on the median only" if ratio >= TARGET else "NOT met"
    print(f"target: ours >= {TARGET:.0f}x the baseline's FPS: {verdict} ({ratio:.2f}x, 95% paired bootstrap "
          f"interval {low:.2f}-{high:.2f})")


if __name__ == "__main__":
    main()
