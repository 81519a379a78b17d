"""The translation module h_theta of STARS (paper section 3.2.1, eq. 1)."""
from __future__ import annotations

import torch
from torch import nn


class TranslationModule(nn.Module):
    """h(X) = Conv1x1(SiLU(InstanceNorm(Conv1x1(X)))): maps one modality's shared features
    towards the other's. One module per direction and aligned stage; channels are preserved."""

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or channels
        self.proj_in = nn.Conv2d(channels, hidden, 1)
        self.norm = nn.InstanceNorm2d(hidden, affine=True)
        self.act = nn.SiLU(inplace=True)
        self.proj_out = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj_in(x)
        if y.shape[-2] * y.shape[-1] == 1:
            # One pixel (a 32-pixel chip at stride 32): its instance statistics are itself, so the
            # normalised value is 0 and InstanceNorm leaves its shift; nn.InstanceNorm2d refuses the case.
            y = self.norm.bias.view(1, -1, 1, 1).expand_as(y).contiguous()  # a copy: SiLU works in place
        else:
            y = self.norm(y)
        return self.proj_out(self.act(y))  # (B, C, h, w)
