"""OpenVINO: IR (.xml + .bin) on Intel CPUs, GPUs and NPUs; INT8 through NNCF, with its accuracy control."""

from rtmw_edge.backends.base import Arithmetic, Backend, Tolerance

BACKEND = Backend(
    name="openvino",
    package=__name__,
    suffix=".xml",
    extra="openvino",
    packages=("openvino", "nncf"),
    precisions=("fp32", "bf16", "fp16"),
    devices=("cpu", "gpu", "npu", "auto"),
    # the CPU plugin computes in what the artifact names (INFERENCE_PRECISION_HINT); bf16 keeps the FP32 IR
    # files, fp16 stores half-precision weights too. x86 with AVX512-FP16 would compute f16 as well, but measured
    # (Xeon, OpenVINO 2026.4) rtmw-m ran 1.3x slower than f32 and RTMDet-nano overflowed: Arm only.
    arithmetic={"bf16": Arithmetic("bf16", ("amx_bf16", "avx512_bf16"), "AMX or AVX512-BF16"),
                "fp16": Arithmetic("fp16", ("asimdhp",), "Arm v8.2 fp16 arithmetic")},
    # bf16 measured on seeded weights (probe input): max error 1.2e-2 of scale on rtmw-m, 2.1e-2 on rtmw-l-384x288,
    # 1.9e-2 on rtmw-x-384x288; argmax agreement counting ties 100% on all three.
    # A bf16 detector is not offered: RTMDet-nano's raw head strays 14-30% of its scale (boxes ~1 px).
    tolerances={("pose", "fp32"): Tolerance(1e-4, 1.0), ("pose", "bf16"): Tolerance(5e-2, 0.95),
                ("pose", "fp16"): Tolerance(1e-2, 0.0), ("detector", "fp32"): Tolerance(1e-4, 0.0),
                ("detector", "fp16"): Tolerance(2e-2, 0.0)},
    accuracy_control=True,
    reads_onnx=True,
)
