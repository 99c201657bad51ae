"""OpenVINO: IR (.xml + .bin) on Intel CPUs, GPUs and NPUs; INT8 through NNCF, with its accuracy control."""

from rtmw_edge.backends.base import Backend, Tolerance

BACKEND = Backend(
    name="openvino",
    package=__name__,
    suffix=".xml",
    extra="openvino",
    packages=("openvino", "nncf"),
    precisions=("fp32", "fp16"),
    devices=("cpu", "gpu", "npu", "auto"),
    tolerances={("pose", "fp32"): Tolerance(5e-5, 1.0), ("pose", "fp16"): Tolerance(1e-2, 0.0),
                ("detector", "fp32"): Tolerance(1e-4, 0.0), ("detector", "fp16"): Tolerance(2e-2, 0.0)},
    accuracy_control=True,
    reads_onnx=True,
)
