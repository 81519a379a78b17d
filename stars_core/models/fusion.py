"""SCSE attention and the STARS fusion module (paper section 3.1.1, Figures 3 and 4)."""
from __future__ import annotations

import torch
from torch import nn


class SCSE(nn.Module):
    """Concurrent spatial and channel squeeze-and-excitation: cSE(U) + sSE(U).

    cSE: global average pool -> Linear C->C/d -> ReLU -> Linear C/d->C -> sigmoid, scales channels.
    sSE: 1x1 conv C->1 -> sigmoid, scales positions.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.cse = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
        )
        self.sse = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        channel_weights = self.cse(u.mean(dim=(2, 3)))[:, :, None, None]  # (B, C, 1, 1)
        spatial_weights = self.sse(u)  # (B, 1, H, W)
        return u * channel_weights + u * spatial_weights


class FusionModule(nn.Module):
    """Fuse a specific stream with a shared stream into (B, 2C, H, W).

    SCSE on each stream, concatenate, Conv1x1-BN-ReLU back to C, a second SCSE, add F_spec (residual),
    then concatenate F_shared. The paper does not give the kernel of the Conv-BN-ReLU; a 1x1 keeps the
    ResNet-50 stage-4 module at 8M instead of 75M parameters.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.scse_spec = SCSE(channels, reduction)
        self.scse_shared = SCSE(channels, reduction)
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )
        self.scse_out = SCSE(channels, reduction)

    def forward(self, spec: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.scse_spec(spec), self.scse_shared(shared)], dim=1)  # (B, 2C, H, W)
        x = self.fuse(x)  # (B, C, H, W)
        x = self.scse_out(x) + spec
        return torch.cat([x, shared], dim=1)  # (B, 2C, H, W)
