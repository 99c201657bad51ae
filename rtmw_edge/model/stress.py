"""Stress weights (`--weights stress`): seeded weights that fail INT8 the way a trained CSPNeXt does.

Untrained weights (weights.py) give every BatchNorm the statistics of a noise batch, so every channel of a tensor
has the same range (and, on real images, nearly constant channels that ignore the input): exactly what hides the
failure of per-tensor int8 activations on trained networks, whose channels differ 100-1000x in range and whose
depthwise convolutions (per channel: nothing mixes them back) scale the weak ones up to full size.

Measured per Conv output before its activation, as the standard deviation over channels of log10(channel range),
the range being max - min over the calibration frames (32 letterboxed frames or crops of the shipped photos):

| network | Convs a depthwise conv reads | other Convs |
| --- | --- | --- |
| trained RTMDet-nano (../shared/models) | 0.39 (p10 0.24, p90 0.49; 34 Convs) | 0.17 (p10 0.11, p90 0.31; 82) |
| untrained rtmw-m | 0.15 (p10 0.12, p90 0.16; 20) | 0.13 (p10 0.11, p90 0.30; 80) |
| stress rtmw-m | 0.39 (p10 0.35, p90 0.41; 20) | 0.17 (p10 0.16, p90 0.19; 80) |

(the detector on the mini COCO-WholeBody images instead: 0.38 and 0.16). The proxy calibrates every BatchNorm, in
network order, on crops of the shipped photos (a trained network's statistics come from images), then multiplies
its output channel c by a seeded log-normal factor 10^(spread z_c) (FEEDS_DEPTHWISE_SPREAD where a depthwise conv
reads the output, OTHER_SPREAD elsewhere: they add up in quadrature to the trained spread) and shifts it by a
seeded offset (OFFSET_MEAN, OFFSET_STD: channels that rarely fire and channels that always do, as trained ones).
Each BatchNorm below is calibrated on the scaled activations: that is the compensating scale downstream (a
depthwise conv's folded weight grows where its input channel shrank, as the trained detector's stem.2 weight of
7.07 against 0.05-0.33). VARIANCE_INFLATION keeps the network as neutral to a perturbation as the trained one:
1% input noise grows from the stem to stage 4 by 1.07x in the trained detector, 1.4x here (1e-4x in untrained
rtmw-m, whose deep layers ignore their input; 2.8x here with the untrained weights' inflation of 4, which lets
int8 noise swamp the neck).

Heads: untrained SimCC logits are nearly flat, so any noise moves the argmax anywhere (2% feature noise moves a
keypoint 5 bins on average). The proxy's classifiers read two directions of the GAU's token features, u along
their mean (keypoints sit mid-crop) and v the direction they vary most in besides (x: first, y: second), and
write a cosine over the bins, logit_j = A (f.u cos t_j + f.v sin t_j), t_j = 2 pi (j - N/2) / N. A is set on the
probe crops so that the median keypoint has the curvature of a model trained on SimCC's Gaussian target (sigma =
the spec's sigma bins, KL beta = 10): its logits fall d^2 / (2 beta sigma^2) d bins from the peak, the margin
targeted at 2 sigma being TARGET_MARGIN_2SIGMA = 0.2 (measured 0.21; 0.45 at 3 sigma, about 2 A = 30-40 across
the crop). A feature error then moves a keypoint in proportion to it (2% noise: 0.2 bins), never anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rtmw_edge import topdown
from rtmw_edge.packaged import package_data

FEEDS_DEPTHWISE_SPREAD = 0.38  # log10 std of the channel factors: sqrt(0.39^2 - 0.15^2) and a little more
OTHER_SPREAD = 0.16
KL_BETA = 10.0  # RTMPose's KLDiscretLoss beta: the trained SimCC distribution is softmax(beta * logits)
TARGET_MARGIN_2SIGMA = 2.0 / KL_BETA  # (2 sigma)^2 / (2 beta sigma^2)
SPREAD_RATIO = 1.0  # std of f.v over the mean of f.u: keypoints spread over about +-1/8 of the crop
# channel mean over channel std before the activation: trained RTMDet-nano p10/p25/p50/p75/p90 -1.61/-0.86/
# -0.03/1.25/3.37 (a tenth of its channels fire on 5% of the pixels, a tenth on all); normal(0.3, 1.5) gives
# -1.62/-0.71/0.30/1.31/2.22. (Untrained rtmw-m on the same photos: -34/-9/0/9/34, nearly constant channels.)
OFFSET_MEAN = 0.3
OFFSET_STD = 1.5
PROBE_BATCH = 32  # crops: fewer leave the stride-32 statistics noisy and the network's gains drift
VARIANCE_INFLATION = 64.0  # BatchNorm outputs of std 1/8 (times the channel factor)


def apply_stress(model: nn.Module, input_hw: tuple[int, int], sigma: tuple[float, float],
                 normal: Callable[[str, int], torch.Tensor], seed: int = 0) -> None:
    """Turn `model`'s untrained weights into stress weights in one seeded probe pass (see the module docstring).

    `normal(name, count)` gives `count` seeded standard normal samples, a stream of their own for each name.
    """
    probe = torch.from_numpy(photo_crops(input_hw, PROBE_BATCH, seed))
    feeds_depthwise = _feeding_depthwise(model, input_hw)
    norms = {m: name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    hooks = []

    def calibrate(norm: nn.BatchNorm2d, inputs: tuple, _output: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        name = norms[norm]
        norm.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        norm.running_var.copy_(x.var(dim=(0, 2, 3), unbiased=False) * VARIANCE_INFLATION)
        spread = FEEDS_DEPTHWISE_SPREAD if name in feeds_depthwise else OTHER_SPREAD
        scale = torch.pow(10.0, spread * normal(f"{name}#scale", norm.num_features)).to(x.dtype)
        offset = (OFFSET_MEAN + OFFSET_STD * normal(f"{name}#offset", norm.num_features)).to(x.dtype)
        norm.weight.copy_(scale)
        norm.bias.copy_(scale * offset / VARIANCE_INFLATION**0.5)
        return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)

    for norm in norms:
        hooks.append(norm.register_forward_hook(calibrate))
    head = getattr(model, "head", None)
    for rank, (linear, bins_sigma) in enumerate(((getattr(head, "cls_x", None), sigma[0]),
                                                 (getattr(head, "cls_y", None), sigma[1]))):
        if linear is not None:
            hooks.append(linear.register_forward_pre_hook(
                lambda module, inputs, s=bins_sigma, r=rank: _peaked(module, inputs[0], s, r)))
    model.eval()
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for hook in hooks:
            hook.remove()


def photo_crops(input_hw: tuple[int, int], count: int, seed: int) -> np.ndarray:
    """`count` network inputs cut from the shipped photos at seeded boxes (half to all of a photo's width and
    height, anywhere in it), made as inference makes them: a trained network's statistics come from images."""
    photos = sorted(package_data("calib_data").glob("*.jpg"))
    rng = np.random.default_rng(seed)
    crops = []
    for k in range(count):
        image = cv2.imread(str(photos[k % len(photos)]), cv2.IMREAD_COLOR)
        size = np.array(image.shape[1::-1], np.float32)
        extent = size * rng.uniform(0.5, 1.0, 2)
        corner = rng.uniform(0, 1, 2) * (size - extent)
        crops.append(topdown.crop(image, np.concatenate([corner, corner + extent])[None], input_hw).batch[0])
    return np.stack(crops)


def _feeding_depthwise(model: nn.Module, input_hw: tuple[int, int]) -> set[str]:
    """Names of the BatchNorms whose module's output a depthwise (grouped) conv reads, found by running it."""
    made: dict[int, str] = {}
    read: list[int] = []
    kept: list[torch.Tensor] = []  # alive for the pass, so no id is reused
    owners = {}
    for name, module in model.named_modules():
        children = dict(module.named_children())
        if isinstance(children.get("bn"), nn.BatchNorm2d):
            owners[module] = f"{name}.bn" if name else "bn"

    def output(module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
        made[id(out)] = owners[module]
        kept.append(out)

    def reader(_module: nn.Module, inputs: tuple) -> None:
        read.append(id(inputs[0]))
        kept.append(inputs[0])

    hooks = [module.register_forward_hook(output) for module in owners]
    hooks += [m.register_forward_pre_hook(reader) for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *input_hw))
    finally:
        for hook in hooks:
            hook.remove()
    return {made[i] for i in read if i in made}


def _peaked(linear: nn.Linear, tokens: torch.Tensor, sigma: float, rank: int) -> None:
    """Cosine classifier weights from the probe's token features [B,K,D] (see the module docstring)."""
    features = tokens.reshape(-1, tokens.shape[-1]).double()
    mean = features.mean(dim=0)
    u = mean / mean.norm()
    across = features - features.mean(dim=0)
    across = across - (across @ u)[:, None] * u[None]
    # where the features vary most besides u (x: the first principal direction, y: the second)
    v = torch.linalg.eigh(across.T @ across).eigenvectors[:, -1 - rank]
    v = v * torch.sign(v[v.abs().argmax()])
    along, across = features @ u, features @ v
    v = v * SPREAD_RATIO * along.mean() / across.std()
    magnitude = torch.sqrt(along**2 + (features @ v) ** 2).median()
    bins = linear.out_features
    amplitude = (bins / (2 * math.pi * sigma)) ** 2 / KL_BETA / magnitude
    t = 2 * math.pi * (torch.arange(bins, dtype=torch.float64) - bins / 2) / bins
    weight = amplitude * (torch.cos(t)[:, None] * u[None] + torch.sin(t)[:, None] * v[None])
    linear.weight.copy_(weight.to(linear.weight.dtype))
