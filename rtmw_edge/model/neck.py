"""CSPNeXtPAFPN without output convs, returning the stride 16 and 32 maps (mmpose's variant)."""

from __future__ import annotations

import torch
from torch import nn

from rtmw_edge.model.layers import ConvModule, CSPLayer

NECK_BLOCKS = 2


def _csp(cin: int, cout: int) -> CSPLayer:
    return CSPLayer(cin, cout, NECK_BLOCKS, add_identity=False, channel_attention=False)


class CSPNeXtPAFPN(nn.Module):
    def __init__(self, c3: int, c4: int, c5: int) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.reduce_layers = nn.ModuleList([ConvModule(c5, c4, 1), ConvModule(c4, c3, 1)])
        self.top_down_blocks = nn.ModuleList([_csp(2 * c4, c4), _csp(2 * c3, c3)])
        self.downsamples = nn.ModuleList([ConvModule(c3, c3, 3, stride=2), ConvModule(c4, c4, 3, stride=2)])
        self.bottom_up_blocks = nn.ModuleList([_csp(2 * c3, c4), _csp(2 * c4, c5)])

    def forward(self, feats: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        x3, x4, x5 = feats
        r5 = self.reduce_layers[0](x5)
        t4 = self.top_down_blocks[0](torch.cat([self.upsample(r5), x4], dim=1))
        r4 = self.reduce_layers[1](t4)
        p3 = self.top_down_blocks[1](torch.cat([self.upsample(r4), x3], dim=1))
        n4 = self.bottom_up_blocks[0](torch.cat([self.downsamples[0](p3), r4], dim=1))
        n5 = self.bottom_up_blocks[1](torch.cat([self.downsamples[1](n4), r5], dim=1))
        return n4, n5

