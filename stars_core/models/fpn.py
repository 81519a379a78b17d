"""Semantic-FPN decoder (Kirillov et al. 2019, as in segmentation_models_pytorch's FPN).

A feature pyramid over the four encoder stages, each level brought to stride 4 by a segmentation
block, the levels summed, dropout, a 1x1 classifier and a bilinear upsampling to the input size.

Normalisation: BatchNorm by default. segmentation_models_pytorch uses GroupNorm here, but GroupNorm
normalises over the whole input, so a pixel's class would depend on what else is in its tile and
sliding-window maps would change with the tiling; BatchNorm at inference uses fixed statistics and
keeps every prediction local. `norm="group"` restores the GroupNorm head (model files of format 1).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


NORMS = ("batch", "group")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(32 if channels % 32 == 0 else 1, channels)
    return nn.BatchNorm2d(channels)


class ConvNormReLU(nn.Module):
    def __init__(self, cin: int, cout: int, upsample: bool, norm: str = "batch"):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), _norm(norm, cout), nn.ReLU(True))
        self.upsample = upsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(x)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return x


class SegmentationBlock(nn.Module):
    """Conv-norm-ReLU blocks that take one pyramid level from stride 4 * 2**n_upsamples to stride 4."""

    def __init__(self, cin: int, cout: int, n_upsamples: int, norm: str = "batch"):
        super().__init__()
        blocks = [ConvNormReLU(cin, cout, upsample=n_upsamples > 0, norm=norm)]
        blocks += [ConvNormReLU(cout, cout, upsample=True, norm=norm) for _ in range(1, n_upsamples)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class FPNDecoder(nn.Module):
    """Four stage features (strides 4, 8, 16, 32) -> class logits at the input size."""

    def __init__(
        self,
        encoder_channels: Sequence[int],
        num_classes: int,
        pyramid_channels: int = 256,
        segmentation_channels: int = 128,
        dropout: float = 0.2,
        norm: str = "batch",
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"decoder norm must be one of {NORMS}, got {norm!r}")
        if len(encoder_channels) != 4:
            raise ValueError(f"FPNDecoder needs four encoder stages, got {len(encoder_channels)}")
        self.lateral = nn.ModuleList(nn.Conv2d(c, pyramid_channels, 1) for c in encoder_channels)
        self.seg_blocks = nn.ModuleList(
            SegmentationBlock(pyramid_channels, segmentation_channels, n_upsamples=i, norm=norm) for i in range(4)
        )
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(segmentation_channels, num_classes, 1)

    def forward(self, features: Sequence[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        p = self.lateral[3](features[3])  # (B, P, H/32, W/32)
        pyramid = [p]
        for i in (2, 1, 0):
            p = F.interpolate(p, size=features[i].shape[-2:], mode="nearest") + self.lateral[i](features[i])
            pyramid.insert(0, p)  # strides 4, 8, 16, 32 once complete
        x = sum(block(level) for block, level in zip(self.seg_blocks, pyramid))  # (B, S, H/4, W/4)
        x = self.classifier(self.dropout(x))  # (B, K, H/4, W/4)
        return F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)  # (B, K, H, W)
