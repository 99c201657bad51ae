"""The same keypoints on aarch64 as on x86? Used by emulate.sh (`make arm64-check`), on both sides.

  keypoints.py dump ARTIFACT_FOLDER... --images IMG... --out x86.npz     (x86: crops the images, keeps the logits)
  keypoints.py dump ARTIFACT_FOLDER... --crops-from x86.npz --out arm.npz (aarch64: the very same crops)
  keypoints.py compare x86.npz arm.npz --results arm/results.json --out agreement.json

Both sides run the network on the same crop batch (made once, on x86), so only the network's arithmetic differs:
FP32 must give every keypoint within one SimCC bin of x86's, or an argmax tie (x86's bin scores within TIE of the
aarch64 maximum); FP16 and INT8 are reported (ncnn's Arm int8 and fp16 kernels are not x86's).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

FORMAT = "rtmw-edge-arm64-check/1"
ONE_BIN = 1  # SimCC bins either way, per axis
TIE = 1e-3  # an argmax tie: the other machine's bin scores within this fraction of the logits' range of the max
ASSERTED = {"fp32": 1.0}  # precision -> least fraction of keypoints within one bin or a tie


def dump(folders: list[str], images: list[str] | None, crops_from: str | None, out: str) -> None:
    import cv2

    from rtmw_edge import topdown
    from rtmw_edge.bench.run import find_pose_artifacts
    from rtmw_edge.predictor import Predictor

    arrays: dict[str, np.ndarray] = {}
    if crops_from:
        arrays["crops"] = np.load(crops_from)["crops"]
    for artifact in find_pose_artifacts(folders):
        predictor = Predictor(artifact.folder, threads=2)
        if "crops" not in arrays:
            batches = []
            for name in images or ():
                image = cv2.imread(name)
                box = np.array([[0, 0, image.shape[1], image.shape[0]]], np.float32)
                batches.append(topdown.crop(image, box, predictor.input_hw).batch)
            arrays["crops"] = np.concatenate(batches)
        simcc_x, simcc_y = predictor.simcc(arrays["crops"])
        key = f"{artifact.meta.backend}-{artifact.meta.precision}"
        arrays[f"{key}/x"], arrays[f"{key}/y"] = simcc_x, simcc_y
        arrays[f"{key}/split_ratio"] = np.float32(predictor.split_ratio)
        print(f"{key}: {len(arrays['crops'])} crops", flush=True)
    np.savez_compressed(out, **arrays)


def agreement(ref_x: np.ndarray, ref_y: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """How closely [N,K,bins] logits `x`, `y` give the keypoints of `ref_x`, `ref_y`."""
    within = np.ones(ref_x.shape[:2], bool)
    tie = np.ones(ref_x.shape[:2], bool)
    worst = 0
    for ref, got in ((ref_x, x), (ref_y, y)):
        want, have = ref.argmax(axis=2), got.argmax(axis=2)
        off = np.abs(want - have)
        worst = max(worst, int(off.max()))
        span = got.max(axis=2) - got.min(axis=2)
        at_want = np.take_along_axis(got, want[..., None], axis=2)[..., 0]
        within &= off <= ONE_BIN
        tie &= (off <= ONE_BIN) | (got.max(axis=2) - at_want <= TIE * np.maximum(span, 1e-12))
    scale = max(float(np.abs(ref_x).max()), float(np.abs(ref_y).max()), 1e-12)
    error = max(float(np.abs(ref_x - x).max()), float(np.abs(ref_y - y).max())) / scale
    return {"keypoints": int(within.size), "within_one_bin": float(within.mean()),
            "within_one_bin_or_tie": float(tie.mean()), "max_bins": worst, "logit_rel_error": error}


def compare(x86_file: str, arm_file: str, results: str, seconds: int | None, out: str) -> int:
    x86, arm = np.load(x86_file), np.load(arm_file)
    keys = sorted({name.split("/")[0] for name in x86.files if "/" in name})
    rows, failed = [], []
    for key in keys:
        if f"{key}/x" not in arm.files:
            failed.append(f"{key}: not run on aarch64")
            continue
        backend, precision = key.rsplit("-", 1)
        figures = agreement(x86[f"{key}/x"], x86[f"{key}/y"], arm[f"{key}/x"], arm[f"{key}/y"])
        least = ASSERTED.get(precision)
        rows.append({"backend": backend, "precision": precision, **figures, "asserted": least})
        print(f"keypoint agreement aarch64 vs x86, {backend} {precision}: {figures['within_one_bin']:.1%} of "
              f"{figures['keypoints']} within one SimCC bin ({figures['within_one_bin_or_tie']:.1%} counting argmax "
              f"ties), at most {figures['max_bins']} bins off, logits {figures['logit_rel_error']:.1e} relative"
              + (f" [asserted >= {least:.0%}]" if least is not None else " [reported]"))
        if least is not None and figures["within_one_bin_or_tie"] < least:
            failed.append(f"{backend} {precision}: {figures['within_one_bin_or_tie']:.1%} within one bin or a tie, "
                          f"needs {least:.0%}")
    machine = json.loads(Path(results).read_text())["machine"]
    summary = {"format": FORMAT, "seconds": seconds, "crops": len(x86["crops"]), "tie": TIE,
               "machine": {k: machine[k] for k in ("cpu", "arch", "emulated", "cores", "isa", "python")},
               "libraries": machine["libraries"], "artifacts": rows, "failed": failed}
    Path(out).write_text(json.dumps(summary, indent=2) + "\n")
    for line in failed:
        print(f"arm64-check: error: {line}", file=sys.stderr)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("folders", nargs="+")
    d.add_argument("--images", nargs="+")
    d.add_argument("--crops-from")
    d.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("x86")
    c.add_argument("arm")
    c.add_argument("--results", required=True, help="the aarch64 results.json: its machine section is kept")
    c.add_argument("--seconds", type=int, help="wall time of the check so far")
    c.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.folders, args.images, args.crops_from, args.out)
        return 0
    return compare(args.x86, args.arm, args.results, args.seconds, args.out)


if __name__ == "__main__":
    sys.exit(main())
