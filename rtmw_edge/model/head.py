"""RTMW head: hierarchical encoding of the stride 16/32 maps, a GAU over keypoint tokens, SimCC outputs.

With `z_bins` it is RTMW3D's head: the same layers plus `cls_z`, a third SimCC classifier for depth.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from rtmw_edge.model.layers import ConvModule, ScaleNorm

GAU_HIDDEN = 256
GAU_S = 128
GAU_EXPANSION = 2
FINAL_KERNEL = 7
PIXEL_SHUFFLE = 2


class Scale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class GAU(nn.Module):
    """Gated attention unit (mmpose's RTMCCBlock, self-attention, no positional terms)."""

    def __init__(self, dim: int = GAU_HIDDEN, s: int = GAU_S, expansion: int = GAU_EXPANSION) -> None:
        super().__init__()
        self.e = dim * expansion
        self.s = s
        self.ln = ScaleNorm(dim)
        self.uv = nn.Linear(dim, 2 * self.e + s, bias=False)
        self.gamma = nn.Parameter(torch.ones(2, s))
        self.beta = nn.Parameter(torch.zeros(2, s))
        self.o = nn.Linear(self.e, dim, bias=False)
        self.res_scale = Scale(dim)
        self.sqrt_s = math.sqrt(s)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        uv = F.silu(self.uv(self.ln(x0)))
        u, v, base = torch.split(uv, [self.e, self.e, self.s], dim=2)
        q = base * self.gamma[0] + self.beta[0]
        k = base * self.gamma[1] + self.beta[1]
        kernel = torch.square(F.relu(torch.bmm(q, k.transpose(1, 2)) / self.sqrt_s))
        return self.res_scale(x0) + self.o(u * torch.bmm(kernel, v))


class RTMWHead(nn.Module):
    def __init__(self, in_channels: int, num_keypoints: int, input_hw: tuple[int, int],
                 split_ratio: float = 2.0, z_bins: int | None = None) -> None:
        super().__init__()
        h, w = input_hw
        tokens = (h // 32) * (w // 32)
        half = GAU_HIDDEN // 2
        relu = nn.ReLU
        self.final_layer = ConvModule(in_channels, num_keypoints, FINAL_KERNEL, act=relu)
        self.mlp = nn.Sequential(ScaleNorm(tokens), nn.Linear(tokens, half, bias=False))
        self.ps = nn.PixelShuffle(PIXEL_SHUFFLE)
        self.conv_dec = ConvModule(in_channels // PIXEL_SHUFFLE**2, in_channels // 4, FINAL_KERNEL, act=relu)
        self.final_layer2 = ConvModule(in_channels // 2 + in_channels // 4, num_keypoints, FINAL_KERNEL,
                                       act=relu)
        self.mlp2 = nn.Sequential(ScaleNorm(tokens * PIXEL_SHUFFLE**2),
                                  nn.Linear(tokens * PIXEL_SHUFFLE**2, half, bias=False))
        self.gau = GAU()
        self.cls_x = nn.Linear(GAU_HIDDEN, int(w * split_ratio), bias=False)
        self.cls_y = nn.Linear(GAU_HIDDEN, int(h * split_ratio), bias=False)
        self.cls_z = nn.Linear(GAU_HIDDEN, z_bins, bias=False) if z_bins else None

    def forward(self, feats: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(simcc_x, simcc_y), and simcc_z after them for a 3D head."""
        enc_b, enc_t = feats
        feats_t = self.mlp(torch.flatten(self.final_layer(enc_t), 2))
        dec_t = self.conv_dec(self.ps(enc_t))
        feats_b = self.mlp2(torch.flatten(self.final_layer2(torch.cat([dec_t, enc_b], dim=1)), 2))
        tokens = self.gau(torch.cat([feats_t, feats_b], dim=2))
        if self.cls_z is None:
            return self.cls_x(tokens), self.cls_y(tokens)
        return self.cls_x(tokens), self.cls_y(tokens), self.cls_z(tokens)
