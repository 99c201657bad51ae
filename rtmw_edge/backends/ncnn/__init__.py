"""ncnn: .param + .bin for Arm boards (Raspberry Pi, Jetson CPU) and Vulkan GPUs; INT8 written by our own
ncnn2table/ncnn2int8 (the pip wheel ships neither), with a cheap single-layer search for the gate."""

from rtmw_edge.backends.base import Arithmetic, Backend, Tolerance

BACKEND = Backend(
    name="ncnn",
    package=__name__,
    suffix=".param",
    extra="ncnn",
    packages=("ncnn",),
    precisions=("fp32", "fp16"),
    devices=("cpu", "vulkan"),
    # fp16: half-precision weights, and ncnn's fp16 storage and arithmetic on Arm v8.2 (x86 ncnn has none, so
    # its tolerance is fp16 storage's measured 1.7e-2 of scale with headroom, not yet measured on an Arm v8.2 CPU)
    arithmetic={"fp16": Arithmetic("fp16", ("asimdhp",), "Arm v8.2 fp16 arithmetic")},
    tolerances={("pose", "fp32"): Tolerance(2e-4, 1.0), ("pose", "fp16"): Tolerance(3e-2, 0.0),
                ("detector", "fp32"): Tolerance(1e-3, 0.0), ("detector", "fp16"): Tolerance(3e-2, 0.0)},
    ranks_layers=True,
)
