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
        return self.proj_out(self.act(self.norm(self.proj_in(x))))  # (B, C, h, w)
