"""Chips for distillation: random windows of the user's SAR rasters, labelled or not, normalised with
the teacher's band statistics, read straight from the files (any raster size; nothing is scanned or
held in memory beyond one batch)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..bands import BandStats, normalise
from ..classes import IGNORE, ClassTable
from ..errors import InputError
from ..segmentation.infer import band_order
from ..raster import aligned, open_raster, valid_mask

MIN_VALID = 0.5  # a chip needs this share of valid SAR pixels
TRIES = 50  # random draws per chip before a raster is said to hold too little data


@dataclass(frozen=True)
class Source:
    """One SAR raster (and its labels, if any) with the teacher's band order."""

    path: str
    labels: str | None
    order: list[int]
    width: int
    height: int


class ChipReader:
    """Draws chips of `chip_size` from `sources`, chip i fixed by (seed, i): a raster chosen by its
    area, then a window with enough valid pixels, flipped or rotated at random."""

    def __init__(self, sources: Sequence[Source], stats: BandStats, table: ClassTable, chip_size: int,
                 ignore_values: Sequence[int] = (), seed: int = 0):
        self.sources, self.stats, self.table, self.chip_size = list(sources), stats, table, chip_size
        self.ignore_values, self.seed = tuple(ignore_values), seed
        areas = np.array([s.width * s.height for s in self.sources], float)
        self.weights = areas / areas.sum()
        self._open: dict[int, tuple] = {}

    def _files(self, k: int):
        if k not in self._open:
            src = self.sources[k]
            ds = rasterio.open(src.path)
            raw = lab = None
            if src.labels is not None:
                raw = rasterio.open(src.labels)
                lab = aligned(ds, raw, Resampling.nearest, src.path, src.labels)
            self._open[k] = (ds, lab, raw)
        return self._open[k][:2]

    def close(self) -> None:
        for handles in self._open.values():
            for h in handles:  # the label raster's warped view, then the file under it
                if h is not None:
                    h.close()
        self._open.clear()

    def chip(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Normalised SAR (C, s, s) float32 and class indices (s, s) uint8 (IGNORE: unlabelled or no data)."""
        rng = np.random.default_rng([self.seed, i])
        k = int(rng.choice(len(self.sources), p=self.weights))
        src, size = self.sources[k], self.chip_size
        ds, lab = self._files(k)
        for _ in range(TRIES):
            window = Window(int(rng.integers(src.width - size + 1)), int(rng.integers(src.height - size + 1)), size, size)
            x = ds.read(src.order, window=window)
            valid = valid_mask(ds, x, window)
            if valid.mean() >= MIN_VALID:
                break
        else:
            raise InputError(f"{src.path!r} has too few valid pixels: {TRIES} random {size}-pixel windows were all "
                             f"more than half no data; leave it out or clip it to its data")
        y = np.full((size, size), IGNORE, np.uint8)
        if lab is not None:
            raw = lab.read(1, window=window, masked=True)
            y = self.table.lookup(raw.data, self.ignore_values, src.labels, mask=np.ma.getmaskarray(raw))
        y[~valid] = IGNORE
        x = normalise(x, valid, self.stats)
        turn, flip = int(rng.integers(4)), bool(rng.integers(2))
        x, y, valid = (np.rot90(a, turn, axes=(-2, -1)) for a in (x, y, valid))
        if flip:
            x, y, valid = x[..., ::-1], y[..., ::-1], valid[..., ::-1]
        return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y), np.ascontiguousarray(valid)

    def batch(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chips = [self.chip(start + j) for j in range(n)]
        return tuple(np.stack(parts) for parts in zip(*chips))


def open_sources(m1: Sequence[str | os.PathLike], labels: Sequence[str | os.PathLike] | None, stats: BandStats,
                 chip_size: int, log=print) -> list[Source]:
    """Check every raster before any work: readable, the teacher's bands, at least one chip in size,
    labels (when given) one per raster and overlapping it."""
    if not m1:
        raise InputError("give at least one SAR raster to distill on (--m1)")
    if labels and len(labels) != len(m1):
        raise InputError(f"--labels must be given once per --m1 raster, in the same order: {len(m1)} raster(s), "
                         f"{len(labels)} label file(s)")
    sources = []
    for k, path in enumerate(m1):
        path = os.fspath(path)
        with open_raster(path, "SAR") as ds:
            order = band_order(ds, stats, "SAR", path, log)
            if min(ds.width, ds.height) < chip_size:
                raise InputError(f"{path!r} is {ds.width} x {ds.height} pixels, smaller than one {chip_size}-pixel "
                                 f"chip; give --chip-size {max(32, min(ds.width, ds.height) // 32 * 32)} or a larger raster")
            label = os.fspath(labels[k]) if labels else None
            if label is not None:
                with open_raster(label, "label"):
                    pass
            sources.append(Source(path, label, order, ds.width, ds.height))
    return sources
