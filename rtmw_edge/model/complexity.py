"""Parameters and multiply-accumulates, counted the way OpenMMLab's published GFLOPs are (fvcore rules)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from rtmw_edge.model.head import GAU


def _conv(mod: nn.Conv2d, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> int:
    return out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]


def _linear(mod: nn.Linear, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> int:
    return out.numel() * mod.in_features


def _batchnorm(mod: nn.BatchNorm2d, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> int:
    return inp[0].numel() * (2 if mod.affine else 1)


def _input_elements(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> int:
    return inp[0].numel()


def _output_elements(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> int:
    return out.numel()


def _gau_attention(mod: GAU, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> int:
    """The two batched matmuls q k^T and A v, which are not modules of their own."""
    batch, tokens, _ = inp[0].shape
    return batch * tokens * tokens * (mod.s + mod.e)


_RULES: dict[type[nn.Module], Callable[..., int]] = {
    nn.Conv2d: _conv,
    nn.Linear: _linear,
    nn.BatchNorm2d: _batchnorm,
    nn.AdaptiveAvgPool2d: _input_elements,
    nn.Upsample: _output_elements,
    GAU: _gau_attention,
}


def count_macs(model: nn.Module, input_hw: tuple[int, int]) -> int:
    """MACs of one forward pass at batch 1."""
    total = 0

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += _RULES[type(mod)](mod, inp, out)

    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in _RULES]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_hw, device=next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return total


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
