"""The detector finds the annotated people on real photos with every backend, and decodes both output layouts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from oracle import MINI_DIR, need

from rtmw_edge.backends import BACKENDS
from rtmw_edge.detector import Detector, box_iou, nms
from rtmw_edge.errors import RtmwEdgeError

MIN_PEOPLE_FOUND = 22  # of 26; measured 23 on every backend (misses: two 0-keypoint specks, one 53x41 person)


@pytest.fixture(scope="module")
def photos() -> list[tuple[np.ndarray, np.ndarray]]:
    """(BGR image, GT person boxes x1,y1,x2,y2) for each coco-wholebody-mini photo."""
    annotations = json.loads(need(MINI_DIR / "example_wholebody_val.json").read_text())
    out = []
    for image in annotations["images"]:
        boxes = np.array([a["bbox"] for a in annotations["annotations"] if a["image_id"] == image["id"]], float)
        boxes[:, 2:] += boxes[:, :2]
        out.append((cv2.imread(str(need(MINI_DIR / image["file_name"]))), boxes))
    return out


@pytest.fixture(scope="module")
def detectors(rtmdet_models) -> dict[str, Detector]:
    return {name: Detector(path, threads=2, **options) for name, (path, options) in rtmdet_models.items()}


@pytest.fixture(scope="module")
def detections(detectors, photos) -> dict[str, list[np.ndarray]]:
    return {name: [det.detect(image) for image, _ in photos] for name, det in detectors.items()}


def _people_found(gt: np.ndarray, found: np.ndarray) -> int:
    """Greedy one-to-one matching: each detection, best score first, takes the best free GT box at IoU >= 0.5."""
    if len(found) == 0:
        return 0
    iou = box_iou(found[:, :4], gt)
    taken = np.zeros(len(gt), bool)
    for row in iou:
        row = np.where(taken, -1.0, row)
        if row.max() >= 0.5:
            taken[row.argmax()] = True
    return int(taken.sum())


@pytest.mark.parametrize("backend", BACKENDS)
def test_finds_the_annotated_people_on_coco_wholebody_mini(detections, photos, backend):
    found = sum(_people_found(gt, boxes) for (_, gt), boxes in zip(photos, detections[backend], strict=True))
    assert found >= MIN_PEOPLE_FOUND, f"{backend}: {found} of 26 people found"


@pytest.mark.parametrize("backend", ["openvino", "ncnn"])
def test_backends_give_the_same_boxes(detections, backend):
    # measured: openvino within 6e-4 px of onnxruntime, ncnn (fp16 weights) within 0.13 px
    for got, want in zip(detections[backend], detections["onnxruntime"], strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got[:, :4], want[:, :4], atol=1.0)
        np.testing.assert_allclose(got[:, 4], want[:, 4], atol=0.01)


def test_boxes_are_sorted_by_score_and_inside_the_image(detections, photos):
    for (image, _), boxes in zip(photos, detections["onnxruntime"], strict=True):
        assert boxes.dtype == np.float32 and boxes.shape[1] == 5
        assert np.all(np.diff(boxes[:, 4]) <= 0) and np.all(boxes[:, 4] > 0.3)
        assert np.all(boxes[:, :4] >= 0)
        assert np.all(boxes[:, [0, 2]] <= image.shape[1]) and np.all(boxes[:, [1, 3]] <= image.shape[0])


def test_bgra_image_gives_the_same_boxes_as_bgr(detectors, detections, photos):
    bgra = cv2.cvtColor(photos[0][0], cv2.COLOR_BGR2BGRA)
    np.testing.assert_array_equal(detectors["onnxruntime"].detect(bgra), detections["onnxruntime"][0])


def test_gray_image_still_finds_the_person(detectors, photos):
    image, gt = photos[0]  # one large person
    assert _people_found(gt, detectors["onnxruntime"].detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))) == 1


def test_blank_image_gives_no_boxes(detectors):
    boxes = detectors["onnxruntime"].detect(np.full((480, 640, 3), 114, np.uint8))
    assert boxes.shape == (0, 5)


def test_an_image_without_colour_channels_is_rejected(detectors):
    with pytest.raises(RtmwEdgeError, match="gray, BGR or BGRA"):
        detectors["onnxruntime"].detect(np.zeros((4, 4, 2), np.uint8))


def test_nms_keeps_the_best_of_overlapping_boxes_and_separate_ones():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.8, 0.9, 0.5]), 0.45).tolist() == [1, 2]


def _constant_model(path: Path, outputs: dict[str, np.ndarray]) -> Path:
    """An ONNX graph whose outputs are fixed arrays (plus 0 * sum(input), so the input is used)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceSum", ["input"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
    ]
    initializers = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    for name, value in outputs.items():
        initializers.append(numpy_helper.from_array(value, f"{name}_value"))
        if value.dtype == np.float32:
            nodes.append(helper.make_node("Add", [f"{name}_value", "nothing"], [name]))
        else:
            nodes.append(helper.make_node("Identity", [f"{name}_value"], [name]))
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 64])],
        [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for n, v in outputs.items()
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return path


def test_mmdeploy_end_to_end_boxes_come_back_divided_by_the_letterbox_scale(tmp_path):
    dets = np.array([[[8, 8, 32, 40, 0.9], [9, 8, 33, 40, 0.8], [40, 4, 60, 20, 0.2]]], np.float32)
    path = _constant_model(tmp_path / "end2end.onnx", {"dets": dets, "labels": np.zeros((1, 3), np.int64)})
    boxes = Detector(path).detect(np.zeros((96, 128, 3), np.uint8))  # r = min(64/96, 64/128) = 0.5
    np.testing.assert_allclose(boxes, [[16, 16, 64, 80, 0.9]])


def test_unrecognised_detector_outputs_are_reported_with_their_shapes(tmp_path):
    path = _constant_model(tmp_path / "classifier.onnx", {"logits": np.zeros((1, 7), np.float32)})
    with pytest.raises(RtmwEdgeError, match=r"\(1, 7\)"):
        Detector(path).detect(np.zeros((64, 64, 3), np.uint8))


def test_an_end_to_end_detector_is_cut_before_its_nms_and_finds_the_boxes_its_nms_kept(tmp_path, photos):
    from end2end_detector import IN_GRAPH_IOU, end2end_detector
    from oracle import MODELS_DIR

    from rtmw_edge.detector import open_detector
    from rtmw_edge.exporter import export_detector

    full = end2end_detector(need(MODELS_DIR / "rtmdet-nano.onnx"), tmp_path / "end2end.onnx")
    artifact, _ = export_detector(full, "onnxruntime", out_dir=tmp_path / "out", name="end2end")
    assert artifact.meta.output_names == ["boxes", "scores"]  # no NonMaxSuppression left to run
    cut, in_graph = open_detector(artifact.folder), Detector(full, nms_iou=IN_GRAPH_IOU)
    found = 0
    for image, _ in photos:
        expected = in_graph.detect(image)  # the graph's own NMS (then ours, which keeps all of it)
        np.testing.assert_allclose(cut.detect(image), expected, atol=1e-3)
        found += len(expected)
    assert found >= MIN_PEOPLE_FOUND


def test_an_nms_whose_boxes_cannot_be_traced_is_one_line(tmp_path):
    from onnx import TensorProto, helper

    from rtmw_edge.onnx_io import without_nms

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["pooled"], axes=[1], keepdims=1),
         helper.make_node("NonMaxSuppression", ["pooled", "pooled"], ["selected"])], "odd",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("selected", TensorProto.INT64, ["n", 3])])
    path = tmp_path / "odd.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    with pytest.raises(RtmwEdgeError, match="cannot find the boxes") as caught:
        without_nms(path, tmp_path / "cut.onnx")
    assert "\n" not in str(caught.value) and not (tmp_path / "cut.onnx").exists()
