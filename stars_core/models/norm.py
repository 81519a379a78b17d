"""BatchNorm with one set of running statistics per modality, for the shared encoder body.

The shared ResNet body runs once per modality in each training step (SAR stem, then optical stem).
In training every pass normalises with its own batch statistics; a plain BatchNorm would then keep
one running average mixing both modalities (about half and half), and a SAR-only map would be
normalised at inference with statistics SAR never had in training. `ModalityBatchNorm2d` keeps the
scale and shift shared but the running statistics per modality, chosen by the stem that feeds the
body (`use_modality`), in training and at inference (METHOD.md; decided after a probe showed about 2
points of SAR-only mIoU lost to the mixed statistics).

State dict keys: modality 1 keeps torchvision's names (`running_mean`, `running_var`,
`num_batches_tracked`), so ImageNet weights load as before; modality 2 adds `running_mean_m2`,
`running_var_m2`, `num_batches_tracked_m2`. With `per_modality=False` the layer behaves as a plain
BatchNorm (one mixed set, the ablation "STARS, old mixed statistics" and model files of format 2).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


# The modality of each layer for the pass in progress: {id(layer): modality}. A context variable, so
# that it belongs to the call (each thread has its own context): two passes of one model in two
# threads, one SAR-only and one optical-only (QGIS runs Processing algorithms in background threads
# and shares cached models), never see each other's choice. Layers not in the mapping use modality 1.
_ACTIVE: ContextVar[dict[int, int]] = ContextVar("stars_modality", default={})


class ModalityBatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d with running statistics for modality 1 and modality 2."""

    def __init__(self, num_features: int, per_modality: bool = True, **kwargs):
        super().__init__(num_features, **kwargs)
        self.per_modality = per_modality
        self.register_buffer("running_mean_m2", self.running_mean.clone())
        self.register_buffer("running_var_m2", self.running_var.clone())
        self.register_buffer("num_batches_tracked_m2", self.num_batches_tracked.clone())

    def statistics(self, modality: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(running mean, running variance, batches tracked) used for `modality`."""
        if modality == 2 and self.per_modality:
            return self.running_mean_m2, self.running_var_m2, self.num_batches_tracked_m2
        return self.running_mean, self.running_var, self.num_batches_tracked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        mean, var, tracked = self.statistics(self.modality)
        factor = self.momentum if self.momentum is not None else 0.0
        if self.training:
            tracked.add_(1)
            if self.momentum is None:  # cumulative average (used by recalibration)
                factor = 1.0 / float(tracked)
        return F.batch_norm(x, mean, var, self.weight, self.bias, self.training, factor, self.eps)

    @property
    def modality(self) -> int:
        """The modality whose statistics this layer uses in the current pass (`use_modality`)."""
        return _ACTIVE.get().get(id(self), 1)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", per_modality={self.per_modality}"


def modality_norms(module: nn.Module) -> list[ModalityBatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, ModalityBatchNorm2d)]


@contextmanager
def use_modality(module: nn.Module, modality: int) -> Iterator[None]:
    """Within the block, every ModalityBatchNorm2d of `module` uses the statistics of `modality`, in
    this thread (context) only: the choice is part of the call, not of the shared model."""
    if modality not in (1, 2):
        raise ValueError(f"modality must be 1 or 2, got {modality!r}")
    active = dict(_ACTIVE.get())
    active.update((id(n), modality) for n in modality_norms(module))
    token = _ACTIVE.set(active)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
