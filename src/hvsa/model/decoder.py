"""A light multi-scale (FPN-style) decoder from encoder taps to class logits at stride 4."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FPNDecoder"]


def _conv_gn_relu(cin: int, cout: int) -> nn.Sequential:
    # GroupNorm, not BatchNorm: the decoder trains on batches of one or two frames of one video.
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(inplace=True))


class FPNDecoder(nn.Module):
    """Top-down feature pyramid: 1x1 laterals, upsample-and-add from the coarsest tap, two 3x3
    convolutions at the finest decoded stride, a 1x1 classifier.

    Args:
        in_channels: channels of the taps, finest first (e.g. stride 4, 8, 16, 32).
        num_classes: C.
        channels: width of the pyramid.

    ``features(taps)`` returns the penultimate map (B, channels, h, w) at the finest tap's
    resolution: the "backbone feature map with the segmentation head removed" used for diversity.
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, channels: int = 64) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.fuse = nn.Sequential(_conv_gn_relu(channels, channels), _conv_gn_relu(channels, channels))
        self.head = nn.Conv2d(channels, num_classes, 1)

    def features(self, taps: Sequence[torch.Tensor]) -> torch.Tensor:
        y = self.lateral[-1](taps[-1])
        for i in range(len(taps) - 2, -1, -1):
            y = F.interpolate(y, size=taps[i].shape[-2:], mode="bilinear", align_corners=False)
            y = y + self.lateral[i](taps[i])
        return self.fuse(y)

    def forward(self, taps: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.head(self.features(taps))
