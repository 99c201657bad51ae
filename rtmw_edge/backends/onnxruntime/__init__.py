"""ONNX Runtime: the reference float backend (what rtmlib runs); CPU, CUDA or TensorRT providers."""

from rtmw_edge.backends.base import Arithmetic, Backend, Tolerance

BACKEND = Backend(
    name="onnxruntime",
    aliases=("onnx",),
    package=__name__,
    suffix=".onnx",
    extra="onnxruntime",
    packages=("onnxruntime",),
    precisions=("fp32", "fp16"),
    devices=("cpu", "cuda", "tensorrt"),
    # fp16 stores half-precision weights, each cast back to float32 where it is used: no CPU provider computes
    # it in fp16 (TensorRT's fp16 mode, on for every artifact, does on the GPU)
    arithmetic={"fp16": Arithmetic("fp32")},
    # errors are relative to the outputs' scale (measured on seeded weights, relative: rtmw-m / rtmw-l-384x288
    # fp32 2e-6 / 2e-6, fp16 7e-4 / 1e-3). fp16 stores weights in half precision; on untrained weights the nearly
    # flat logits make argmax fragile, so fp16 is held to the logit error, and argmax agreement is reported.
    tolerances={("pose", "fp32"): Tolerance(1e-4, 1.0), ("pose", "fp16"): Tolerance(1e-2, 0.0),
                ("detector", "fp32"): Tolerance(1e-5, 0.0), ("detector", "fp16"): Tolerance(2e-2, 0.0)},
    reference=True,
    reads_onnx=True,
)
