"""The one place an ncnn.Net is built, so every use (inference, calibration, checks) computes the same way."""

from __future__ import annotations

from pathlib import Path

import ncnn

from rtmw_edge.errors import RtmwEdgeError

# ncnn computes in fp16 or bf16 by default where the CPU can; an artifact computes in the precision it names,
# so an FP32 (or INT8) artifact keeps its float layers in float32 on every backend (the three backends give the
# same keypoints and calibration reads true float activations), and an fp16 one turns fp16 on.
_FP16 = ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic")
_BF16 = ("use_bf16_packed", "use_bf16_storage")


def load_net(param: Path, weights: Path, threads: int | None = None, vulkan: bool = False,
             int8: bool = False, fp16: bool = False) -> ncnn.Net:
    if not Path(weights).is_file():
        raise RtmwEdgeError(f"{param}: the weights {Path(weights).name} are not beside it")
    net = ncnn.Net()
    if threads:
        net.opt.num_threads = threads
    net.opt.use_vulkan_compute = vulkan
    for option in (*_FP16, *_BF16):
        if hasattr(net.opt, option):
            setattr(net.opt, option, fp16 and option in _FP16)
    if int8:
        net.opt.use_int8_inference = True
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise RtmwEdgeError(f"ncnn cannot load {param} / {Path(weights).name}")
    return net
