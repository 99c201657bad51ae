"""A pose artifact of a few bytes that runs in ONNX Runtime in microseconds: for tests about everything but the net."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtmw_edge import topdown
from rtmw_edge.artifact import ArtifactMeta, write_metadata
from rtmw_edge.keypoints import NUM_KEYPOINTS, layout_metadata


def constant_artifact(folder: Path, value: float, input_hw: tuple[int, int] = (16, 12), peak: bool = False) -> Path:
    """A pose artifact whose SimCC outputs are all `value` whatever the input (what a broken INT8 model gives);
    with `peak`, every keypoint's logits peak at the middle bin, so all keypoints land on the box's centre."""
    simcc_x, simcc_y = (_constant_logits(value, size, peak) for size in (input_hw[1] * 2, input_hw[0] * 2))
    return fixed_output_artifact(folder, simcc_x, simcc_y, input_hw)


def pattern_artifact(folder: Path, seed: int = 0, input_hw: tuple[int, int] = (16, 12)) -> Path:
    """An untrained pose network's stand-in: fixed random SimCC logits whatever the input, as untrained RTMW's
    nearly are. Its keypoints sit at fixed places of each crop (so they move with the box they were found in),
    spread over the whole crop, with scores from 0 to 1."""
    rng = np.random.default_rng(seed)
    peak = rng.uniform(0, 1, (NUM_KEYPOINTS, 1))  # each keypoint's score
    return fixed_output_artifact(folder, peak * rng.uniform(0, 1, (NUM_KEYPOINTS, input_hw[1] * 2)),
                                 peak * rng.uniform(0, 1, (NUM_KEYPOINTS, input_hw[0] * 2)), input_hw)


def fixed_output_artifact(folder: Path, simcc_x: np.ndarray, simcc_y: np.ndarray, input_hw: tuple[int, int]) -> Path:
    """A pose artifact (ONNX Runtime, microseconds per crop) whose SimCC outputs are these [133, 2W] and [133, 2H]
    logits for every crop."""
    folder.mkdir()
    fixed_pose_onnx(folder / "constant.onnx", simcc_x, simcc_y, input_hw)
    write_metadata(folder, ArtifactMeta(
        kind="pose", model="constant", backend="onnxruntime", precision="int8", main_file="constant.onnx", files={},
        input_name="input", output_names=["simcc_x", "simcc_y"], input_hw=list(input_hw),
        weights={"kind": "untrained"}, trained=False,
        preprocessing={"channel_order": "RGB", "mean": list(topdown.MEAN_RGB), "std": list(topdown.STD_RGB),
                       "padding": topdown.PADDING},
        decoding={"codec": "simcc", "split_ratio": 2.0}, keypoints=layout_metadata()))
    return folder


def constant_pose_onnx(path: Path, value: float, input_hw: tuple[int, int], peak: bool = False) -> Path:
    """An RTMW-shaped ONNX giving `value` (plus one at the middle bin with `peak`)."""
    simcc_x, simcc_y = (_constant_logits(value, size, peak) for size in (input_hw[1] * 2, input_hw[0] * 2))
    return fixed_pose_onnx(path, simcc_x, simcc_y, input_hw)


def _constant_logits(value: float, size: int, peak: bool) -> np.ndarray:
    logits = np.full((NUM_KEYPOINTS, size), value, np.float32)
    logits[:, size // 2] += 1.0 if peak else 0.0
    return logits


def fixed_pose_onnx(path: Path, simcc_x: np.ndarray, simcc_y: np.ndarray, input_hw: tuple[int, int]) -> Path:
    """An RTMW-shaped ONNX (input [batch,3,H,W], simcc_x [batch,133,2W], simcc_y [batch,133,2H]) giving these
    logits for every crop."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceSum", ["input", "axes"], ["total"], keepdims=1),
             helper.make_node("Reshape", ["total", "column"], ["per_image"]),
             helper.make_node("Mul", ["per_image", "zero"], ["nothing"])]
    inits = [numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"),
             numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "column"),
             numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outputs = []
    for name, logits in (("simcc_x", simcc_x), ("simcc_y", simcc_y)):
        inits.append(numpy_helper.from_array(np.asarray(logits, np.float32), f"{name}_value"))
        nodes.append(helper.make_node("Add", ["nothing", f"{name}_value"], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", NUM_KEYPOINTS,
                                                                               logits.shape[1]]))
    graph = helper.make_graph(
        nodes, "constant", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, *input_hw])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return path


def constant_detector(path: Path, input_hw: tuple[int, int] = (32, 32)) -> Path:
    """An mmdeploy-layout detector ONNX (dets [1,1,5], labels [1,1]) that finds one person filling its input."""
    from onnx import helper, numpy_helper

    box = np.array([[[0, 0, input_hw[1], input_hw[0], 0.9]]], np.float32)
    nodes = [helper.make_node("ReduceSum", ["input"], ["total"], keepdims=0),
             helper.make_node("Mul", ["total", "zero"], ["nothing"]),
             helper.make_node("Add", ["nothing", "box"], ["dets"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero"), numpy_helper.from_array(box, "box")]
    return _save_detector(path, "constant_detector", nodes, inits, input_hw)


def mean_score_detector(path: Path, input_hw: tuple[int, int]) -> Path:
    """An mmdeploy-layout detector whose one box fills its input and scores mean(input) / 255: it shows what the
    letterbox fed it (raw pixels give 1.0 on a white image, RTMDet's normalisation about 0.009)."""
    from onnx import helper, numpy_helper

    box = np.array([[[0, 0, input_hw[1], input_hw[0]]]], np.float32)
    nodes = [helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=0),
             helper.make_node("Div", ["mean", "full_scale"], ["score"]),
             helper.make_node("Reshape", ["score", "one_by_one"], ["score3"]),
             helper.make_node("Concat", ["box", "score3"], ["dets"], axis=2)]
    inits = [numpy_helper.from_array(np.array(255, np.float32), "full_scale"),
             numpy_helper.from_array(np.array([1, 1, 1], np.int64), "one_by_one"),
             numpy_helper.from_array(box, "box")]
    return _save_detector(path, "mean_score_detector", nodes, inits, input_hw)


def _save_detector(path: Path, name: str, nodes: list, inits: list, input_hw: tuple[int, int]) -> Path:
    """A graph computing `dets` [1,1,5] from `input` [1,3,H,W], given constant `labels` [1,1], saved to `path`."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [*nodes, helper.make_node("Identity", ["label"], ["labels"])]
    inits = [*inits, numpy_helper.from_array(np.zeros((1, 1), np.int64), "label")]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, *input_hw])],
        [helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, 1, 5]),
         helper.make_tensor_value_info("labels", TensorProto.INT64, [1, 1])], inits)
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
                     .SerializeToString())
    return path
