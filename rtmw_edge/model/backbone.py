"""CSPNeXt (P5) backbone, returning the stride 8, 16 and 32 maps."""

from __future__ import annotations

import torch
from torch import nn

from rtmw_edge.model.layers import ConvModule, CSPLayer, SPPBottleneck

# (in channels, out channels, blocks, residual add, SPP) per stage before widen/deepen
P5_STAGES = ((64, 128, 3, True, False), (128, 256, 6, True, False), (256, 512, 6, True, False),
             (512, 1024, 3, False, True))


def num_blocks(n: int, deepen: float) -> int:
    return max(round(n * deepen), 1)


class CSPNeXt(nn.Module):
    def __init__(self, deepen: float, widen: float) -> None:
        super().__init__()
        c0 = int(P5_STAGES[0][0] * widen)
        half = int(P5_STAGES[0][0] * widen // 2)
        self.stem = nn.Sequential(ConvModule(3, half, 3, stride=2), ConvModule(half, half, 3),
                                  ConvModule(half, c0, 3))
        for i, (cin, cout, n, add, spp) in enumerate(P5_STAGES, start=1):
            cin, cout = int(cin * widen), int(cout * widen)
            layers: list[nn.Module] = [ConvModule(cin, cout, 3, stride=2)]
            if spp:
                layers.append(SPPBottleneck(cout))
            layers.append(CSPLayer(cout, cout, num_blocks(n, deepen), add, channel_attention=True))
            self.add_module(f"stage{i}", nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stage2(self.stage1(self.stem(x)))
        x16 = self.stage3(x)
        return x, x16, self.stage4(x16)
