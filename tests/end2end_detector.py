"""An mmdeploy-style end-to-end person detector built from the trained RTMDet-nano's raw head (../shared/models):
the head's maps decoded to boxes [1,N,4] and sigmoid scores [1,N,1], then mmdeploy's ONNX Runtime tail: pre-NMS
top-k (TopK, Gather), scores transposed to [1,1,K], NonMaxSuppression, and the kept boxes gathered into `dets`
[1,S,5] and `labels` [1,S], with `input` as its input, as in OpenMMLab's SDK zips."""

from __future__ import annotations

from pathlib import Path

import numpy as np

IN_GRAPH_IOU = 0.45  # NonMaxSuppression's IoU threshold (the Detector's default, so both keep the same boxes)
IN_GRAPH_SCORE = 0.3  # and its score threshold
PRE_TOP_K = 1000


def end2end_detector(raw_head: Path, out: Path, size: int | None = None) -> Path:
    """`size`: the input side instead of the head's own (its upsampling is by scale: any multiple of 32 runs),
    to stand in for a registered detector of another input size (rtmdet-m's 640)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper, shape_inference

    model = onnx.load(str(raw_head))
    graph = model.graph
    (image,) = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if size is not None:
        for dim in image.type.tensor_type.shape.dim[2:]:
            dim.dim_value = size
        del graph.value_info[:]
        for output in graph.output:
            output.type.tensor_type.ClearField("shape")
        model = shape_inference.infer_shapes(model)
        graph = model.graph
        (image,) = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    height, width = (d.dim_value for d in image.type.tensor_type.shape.dim[2:])
    for node in graph.node:  # the SDK's input is called `input`
        node.input[:] = ["input" if name == image.name else name for name in node.input]
    image.name = "input"
    maps = [o.name for o in graph.output]
    nodes, inits, points = [], [], []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    for i, output in enumerate(graph.output):
        rows, cols = (d.dim_value for d in output.type.tensor_type.shape.dim[1:3])
        nodes.append(helper.make_node("Reshape", [output.name, const(f"flat{i}", np.array([1, -1, 5]))],
                                      [f"level{i}"]))
        ys, xs = np.mgrid[0:rows, 0:cols]
        points.append(np.stack([xs * (width / cols), ys * (height / rows)], -1).reshape(-1, 2))
    const("points", np.concatenate(points)[None].astype(np.float32))
    nodes += [
        helper.make_node("Concat", [f"level{i}" for i in range(len(maps))], ["all"], axis=1),
        helper.make_node("Split", ["all"], ["logit", "lt", "rb"], axis=2, split=[1, 2, 2]),  # opset 11, as the head
        helper.make_node("Sigmoid", ["logit"], ["scores"]),
        helper.make_node("Sub", ["points", "lt"], ["x1y1"]),
        helper.make_node("Add", ["points", "rb"], ["x2y2"]),
        helper.make_node("Concat", ["x1y1", "x2y2"], ["boxes"], axis=2),
        # mmdeploy's pre_top_k
        helper.make_node("ReduceMax", ["scores"], ["best"], axes=[2], keepdims=0),
        helper.make_node("TopK", ["best", const("k", np.array([min(PRE_TOP_K, sum(len(p) for p in points))]))],
                         ["top_scores", "top"], axis=1),
        helper.make_node("Squeeze", ["top"], ["top_flat"], axes=[0]),
        helper.make_node("Gather", ["boxes", "top_flat"], ["top_boxes"], axis=1),
        helper.make_node("Gather", ["scores", "top_flat"], ["top_class_scores"], axis=1),
        helper.make_node("Transpose", ["top_class_scores"], ["nms_scores"], perm=[0, 2, 1]),
        helper.make_node("NonMaxSuppression", ["top_boxes", "nms_scores", const("max_out", np.array([100])),
                                               const("iou", np.array([IN_GRAPH_IOU], np.float32)),
                                               const("score", np.array([IN_GRAPH_SCORE], np.float32))],
                         ["selected"]),
        helper.make_node("Gather", ["selected", const("column2", np.array(2))], ["kept"], axis=1),
        helper.make_node("Gather", ["selected", const("column1", np.array(1))], ["kept_labels"], axis=1),
        helper.make_node("Gather", ["top_boxes", "kept"], ["kept_boxes"], axis=1),
        helper.make_node("Gather", ["top_class_scores", "kept"], ["kept_scores"], axis=1),
        helper.make_node("Concat", ["kept_boxes", "kept_scores"], ["dets"], axis=2),
        helper.make_node("Unsqueeze", ["kept_labels"], ["labels"], axes=[0]),
    ]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, "boxes", 5]),
                         helper.make_tensor_value_info("labels", TensorProto.INT64, [1, "boxes"])])
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out
