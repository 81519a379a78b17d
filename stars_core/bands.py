"""Band normalisation shared by training and segmentation, so the two cannot drift apart.

`BandStats` holds robust per-band statistics (stored in the model file); `normalise` turns raw band
values into model inputs: clip to the 0.5/99.5 percentiles, subtract the mean, divide by the
standard deviation, and put no-data pixels at the band mean (0 after normalisation), the value the
network saw for them in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class BandStats:
    """Robust per-band normalisation: clip to [lo, hi] (0.5/99.5 percentiles), then (x - mean) / std."""

    names: tuple[str, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(C, H, W) raw values -> float32 normalised values (no-data handling: `normalise`)."""
        if x.shape[0] != len(self.names):
            raise InputError(f"expected {len(self.names)} bands ({', '.join(self.names)}), got {x.shape[0]}")
        lo, hi, mean, std = (np.asarray(v, np.float32)[:, None, None] for v in (self.lo, self.hi, self.mean, self.std))
        return ((np.clip(x.astype(np.float32), lo, hi) - mean) / std).astype(np.float32)

    def to_dict(self) -> dict:
        return {k: list(getattr(self, k)) for k in ("names", "lo", "hi", "mean", "std")}

    @classmethod
    def from_dict(cls, d: dict) -> "BandStats":
        return cls(*(tuple(d[k]) for k in ("names", "lo", "hi", "mean", "std")))

    @classmethod
    def from_samples(cls, names: Sequence[str], samples: np.ndarray) -> "BandStats":
        """samples: (N, C) valid pixel values (float64 accepted)."""
        if samples.shape[0] < 2:
            raise InputError("no valid pixels to compute normalisation statistics from")
        lo, hi = np.percentile(samples, [0.5, 99.5], axis=0)
        clipped = np.clip(samples, lo, hi)
        std = np.maximum(clipped.std(axis=0), 1e-6 * np.maximum(1.0, np.abs(hi - lo)))
        return cls(tuple(names), *(tuple(float(v) for v in a) for a in (lo, hi, clipped.mean(axis=0), std)))


def normalise(x: np.ndarray, valid: np.ndarray, stats: BandStats) -> np.ndarray:
    """(C, H, W) raw values and an (H, W) validity mask -> float32 model input, no data at 0."""
    return np.where(valid, stats.apply(x), 0.0).astype(np.float32)
