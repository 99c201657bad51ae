"""--weights stress: seeded weights whose channels spread like the trained detector's, with confident SimCC heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rtmw_edge.model import build_model, get_spec
from rtmw_edge.model.stress import TARGET_MARGIN_2SIGMA, photo_crops
from rtmw_edge.model.weights import Weights, load_weights

SPEC = get_spec("rtmw-m")


def seeded(kind: str) -> nn.Module:
    model = build_model(SPEC)
    assert load_weights(model, SPEC, kind) == Weights(kind, kind, None)
    return model


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {kind: seeded(kind) for kind in ("untrained", "stress")}


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    return torch.from_numpy(photo_crops(SPEC.input_hw, 8, seed=5))  # not the seed the stress probe used


def depthwise_input_spread(model: nn.Module, crops: torch.Tensor) -> float:
    """Median over the BatchNorms a depthwise conv reads of the std of log10(channel range): the statistic the
    trained RTMDet-nano gives 0.39 (stress.py)."""
    spreads = []

    def measure(_module, _inputs, out):
        ranges = (out.amax(dim=(0, 2, 3)) - out.amin(dim=(0, 2, 3))).double()
        spreads.append(float(torch.log10(ranges[ranges > 1e-4 * ranges.max()]).std()))

    hooks = [m.conv1.bn.register_forward_hook(measure) for m in model.modules() if hasattr(m, "conv2")
             and hasattr(m.conv2, "depthwise_conv")]
    with torch.no_grad():
        model(crops)
    for hook in hooks:
        hook.remove()
    return float(np.median(spreads))


def keypoint_shift(model: nn.Module, crops: torch.Tensor, noise: float = 0.02) -> float:
    """Mean |x argmax change| in bins when the SimCC classifier's input tokens get `noise` relative error: what
    small INT8 damage does to the keypoints."""
    generator = torch.Generator().manual_seed(0)

    def perturb(_module, inputs):
        tokens = inputs[0]
        return (tokens + noise * tokens.norm(dim=-1, keepdim=True) / tokens.shape[-1] ** 0.5
                * torch.randn(tokens.shape, generator=generator),)

    with torch.no_grad():
        clean = model(crops)[0].argmax(dim=-1)
        hook = model.head.cls_x.register_forward_pre_hook(perturb)
        noisy = model(crops)[0].argmax(dim=-1)
        hook.remove()
    return float((clean - noisy).abs().float().mean())


def peak_curvature(model: nn.Module, crops: torch.Tensor) -> float:
    """Median over keypoints of how far the x logits fall 2 sigma bins from their peak (mean of both sides)."""
    with torch.no_grad():
        simcc_x = model(crops)[0].reshape(-1, int(SPEC.input_hw[1] * SPEC.split_ratio))
    reach = round(2 * SPEC.sigma[0])
    peaks = simcc_x.argmax(dim=1).clamp(reach, simcc_x.shape[1] - 1 - reach)
    rows = torch.arange(len(simcc_x))
    drop = simcc_x[rows, peaks] - (simcc_x[rows, peaks - reach] + simcc_x[rows, peaks + reach]) / 2
    return float(drop.median())


def test_stress_channels_spread_like_the_trained_detector_and_untrained_ones_do_not(models, crops):
    assert 0.3 <= depthwise_input_spread(models["stress"], crops) <= 0.5
    assert depthwise_input_spread(models["untrained"], crops) < 0.2


def test_stress_heads_are_peaked_so_small_damage_moves_keypoints_little_and_untrained_ones_are_flat(models, crops):
    assert 0.5 <= peak_curvature(models["stress"], crops) / TARGET_MARGIN_2SIGMA <= 2.0  # the trained target's
    shift = keypoint_shift(models["stress"], crops)  # measured 0.2 bins for 2% feature error
    assert shift < 1.0
    assert keypoint_shift(models["untrained"], crops) > 10 * shift  # nearly flat: the argmax jumps (5 bins)


def test_stress_weights_are_the_same_on_every_call(models):
    again = seeded("stress").state_dict()
    assert all(torch.equal(again[k], v) for k, v in models["stress"].state_dict().items())

