"""The RTMW network: backbone -> neck -> head, mapping a normalised RGB crop to SimCC logits (x, y; z for 3D)."""

from __future__ import annotations

import torch
from torch import nn

from rtmw_edge.model.backbone import CSPNeXt
from rtmw_edge.model.head import RTMWHead
from rtmw_edge.model.neck import CSPNeXtPAFPN
from rtmw_edge.model.registry import ModelSpec


class RTMW(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        c3, c4, c5 = spec.channels
        self.backbone = CSPNeXt(spec.deepen, spec.widen)
        self.neck = CSPNeXtPAFPN(c3, c4, c5)
        self.head = RTMWHead(c5, spec.num_keypoints, spec.input_hw, spec.split_ratio, spec.z_bins)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.head(self.neck(self.backbone(x)))
