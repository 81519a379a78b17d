"""Running a PyTorch model file for segmentation (`infer.segment` picks this for .stars files).

The network, its branch selection, bf16 autocast on CUDA, pinned non-blocking transfers, and the
blending buffers: numpy on the CPU, torch tensors on the model's device on CUDA (`DeviceBlendRows`),
where blending on the CPU would hold the GPU back; only finished block rows come back to the host.
"""
from __future__ import annotations

import os
from functools import partial

import numpy as np
import torch

from ..bands import normalise
from ..checkpoint import LoadedModel, load_model, mixed_statistics_warning
from ..devices import autocast, resolve_device
from ..tiling import BlendRows, Tile, pad_reflect


class TorchRunner:
    """A LoadedModel on its device, with what `infer.segment` asks of a model."""

    prepare = staticmethod(normalise)  # the graph expects normalised bands, no data at 0
    branches = None  # every branch the model has

    def __init__(self, model: str | os.PathLike | LoadedModel, device: str = "auto", amp: bool = True,
                 weights: str = "best"):
        self.device = resolve_device(device)
        self.path = None if isinstance(model, LoadedModel) else os.fspath(model)  # output checks compare with it
        self.loaded = model if isinstance(model, LoadedModel) else load_model(model, self.device, weights)
        self.loaded.model.to(self.device).eval()
        self.amp = amp
        meta = self.loaded.meta
        self.classes, self.stats, self.modalities = meta.classes, meta.stats, meta.modalities
        self.chip_size, self.pixel_size, self.crs, self.mode = meta.chip_size, meta.pixel_size, meta.crs, meta.model.mode
        self.device_type, self.device_name = self.device.type, str(self.device)
        warning = mixed_statistics_warning(meta, self.path)
        self.notes = [warning] if warning else []  # said by every segmentation with this model

    def blend_rows(self, height: int, width: int, block: int, weights: np.ndarray, on_device: bool | None):
        if on_device if on_device is not None else self.device.type == "cuda":
            return DeviceBlendRows(height, width, len(self.classes), block, weights).to(self.device)
        return BlendRows(height, width, len(self.classes), block, weights)

    @torch.inference_mode()
    def probabilities(self, branch: str, x: np.ndarray, x2: np.ndarray | None, v2, tiles: list[Tile]):
        """(B, C, h, w) inputs -> (B, K, h, w) class probabilities of `branch`: a numpy array, or a
        tensor on the device when the blending happens there."""
        model, device = self.loaded.model, self.device
        xt = _to_device(x, device)
        with autocast(device, self.amp):
            if branch == "m1":
                logits = model(xt)
            elif branch == "m2":
                logits = model(x2=xt)
            else:
                out = model(xt, _to_device(x2, device))
                logits = out.fused
        p = torch.softmax(logits.float(), dim=1)
        if branch == "fused" and out.m1 is not None:
            # where the optical raster has no data, the modality-1 branch gives the answer
            have2 = np.stack([pad_reflect(v[None], t.pad_bottom, t.pad_right)[0] for v, t in zip(v2, tiles)])
            have2 = torch.from_numpy(have2).to(device)
            p = torch.where(have2[:, None], p, torch.softmax(out.m1.float(), dim=1))
        return p if device.type == "cuda" else p.numpy()


def _to_device(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host array to the device; through pinned memory and without waiting, on CUDA."""
    t = torch.from_numpy(x)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class DeviceBlendRows(BlendRows):
    """`tiling.BlendRows` with its buffers in torch tensors on the model's device: the weighted sums
    stay where the probabilities are computed, and only finished block rows are copied back."""

    def to(self, device: torch.device) -> "DeviceBlendRows":
        self.device = device
        self.weights = torch.as_tensor(self.weights, device=device)
        return self

    def _buffers(self, b: int):
        if b not in self.rows:
            h = min(self.block, self.height - b * self.block)
            zeros = partial(torch.zeros, device=self.device)
            self.rows[b] = (zeros((self.classes, h, self.width)), zeros((h, self.width)),
                            np.zeros((h, self.width), bool))
        return self.rows[b]

    def add(self, tile: Tile, probs, valid: np.ndarray) -> None:
        super().add(tile, torch.as_tensor(probs, device=self.device), valid)

    def finished(self, below: int):
        for row, probs, ok in super().finished(below):
            yield row, probs.cpu().numpy(), ok

    @staticmethod
    def _normalise(probs, wsum):
        return probs.div_(wsum.clamp_min(1e-12))
