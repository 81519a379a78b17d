"""A generated SAR time series over the demo scene, with known changes and the true labels of every
date: what `stars demo-scene --dates N` writes beside the scene, for the change chain's demo, tests
and bench.

Dates are 12 days apart (a Sentinel-1 repeat), the first the scene's own. Events, placed by the seed:
    forest clearing     a block of forest becomes bare ground from a third of the way through
    new buildings       a block of farmland becomes buildings from half-way
    flood               one field is water on a single date, then farmland again (real, but brief)
    crop cycle          farmland backscatter rises and falls with the season (+/- 2.5 dB): SAR
                        changes, the class does not (the flicker a temporal filter must not take for
                        change)
Each date has its own speckle. Files: `series/S1_<date>.tif` (VV, VH in dB), `series/labels_<date>.tif`,
`series/dates.csv` (date, path) and `series/events.csv` (what changed where, and when).
"""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import rasterio

from ..demo_scene import (BARE, BUILDINGS, FARMLAND, FOREST, LABEL_NODATA, SAR_NODATA, WATER, make_parcels, raster_profile,
                          make_labels, make_sar)
from ..errors import InputError
from ..files import atomic_outputs

FIRST = dt.date(2024, 4, 1)
REPEAT = 12  # days
CROP_DB = 2.5  # seasonal swing of farmland backscatter


def series_dates(n: int) -> list[str]:
    return [(FIRST + dt.timedelta(days=REPEAT * k)).isoformat() for k in range(n)]


def _block(labels: np.ndarray, cls: int, side: int, rng: np.random.Generator) -> tuple[slice, slice]:
    """A side x side window where class `cls` covers the most pixels (of a few random tries)."""
    size = labels.shape[0]
    best, where = -1, (slice(0, side), slice(0, side))
    for _ in range(64):
        r, c = (int(v) for v in rng.integers(0, size - side, 2))
        n = int((labels[r:r + side, c:c + side] == cls).sum())
        if n > best:
            best, where = n, (slice(r, r + side), slice(c, c + side))
    return where


def series_labels(base: np.ndarray, parcels: np.ndarray, n: int, rng: np.random.Generator, events: bool = True):
    """The labels of every date and the events that made them (none without `events`)."""
    if not events:
        return [base.copy() for _ in range(n)], []
    size = base.shape[0]
    side = max(8, size // 8)
    clearing, built = _block(base, FOREST, side, rng), _block(base, FARMLAND, side, rng)
    fields = [p for p in np.unique(parcels[base == FARMLAND]) if (parcels == p).sum() > side * side // 4]
    flooded = int(fields[int(rng.integers(len(fields)))]) if fields else None
    t_clear, t_built, t_flood = max(1, n // 3), max(1, n // 2), max(1, (2 * n) // 3)
    events = []
    out = []
    for k in range(n):
        lab = base.copy()
        if k >= t_clear:
            lab[clearing][base[clearing] == FOREST] = BARE
        if k >= t_built:
            lab[built][base[built] == FARMLAND] = BUILDINGS
        if flooded is not None and k == t_flood:
            lab[(parcels == flooded) & (base == FARMLAND)] = WATER
        out.append(lab)
    dates = series_dates(n)
    if n > t_clear:
        events.append(("forest clearing", "forest", "bare ground", dates[t_clear], _bounds(clearing)))
    if n > t_built:
        events.append(("new buildings", "farmland", "buildings", dates[t_built], _bounds(built)))
    if flooded is not None and n > t_flood:
        events.append(("flood (one date)", "farmland", "water", dates[t_flood], f"field {flooded}"))
    return out, events


def _bounds(window: tuple[slice, slice]) -> str:
    return f"rows {window[0].start}-{window[0].stop}, columns {window[1].start}-{window[1].stop}"


def make_demo_series(out_dir: str | Path, dates: int, size: int = 2048, seed: int = 0,
                     pixel_size: float = 2.0, events: bool = True) -> dict[str, Path]:
    """Write the series of `dates` dates over the demo scene of this size and seed into
    `out_dir`/series (see the module docstring; `events=False`: no class changes, only the crop
    cycle and each date's speckle); returns the paths of dates.csv and events.csv."""
    if dates < 2:
        raise InputError(f"a series needs at least 2 dates, got {dates}")
    rng = np.random.default_rng(seed)  # the scene's own draws first, so the base labels are the scene's
    parcels = make_parcels(rng, size, max(8, size // 40), max(16, size // 14))
    base = make_labels(rng, parcels)
    labels, happened = series_labels(base, parcels, dates, np.random.default_rng([seed, 7]), events)
    folder = Path(out_dir) / "series"
    folder.mkdir(parents=True, exist_ok=True)
    names = series_dates(dates)
    files = [folder / f"S1_{d}.tif" for d in names] + [folder / f"labels_{d}.tif" for d in names]
    table, log = folder / "dates.csv", folder / "events.csv"
    with atomic_outputs(*files, table, log) as temps:
        for k, date in enumerate(names):
            sar = make_sar(np.random.default_rng([seed, 1000 + k]), labels[k], parcels)
            season = CROP_DB * np.sin(2 * np.pi * k / max(dates, 4))  # crop cycle: SAR moves, the class does not
            sar[:, labels[k] == FARMLAND] += np.float32(season)
            with rasterio.open(temps[k], "w", **raster_profile(size, 2, "float32", SAR_NODATA, pixel_size)) as dst:
                dst.write(sar)
                dst.descriptions = ("VV", "VH")
                dst.update_tags(modality="SAR", units="dB", TIFFTAG_DATETIME=f"{date.replace('-', ':')} 05:30:00")
            with rasterio.open(temps[dates + k], "w", **raster_profile(size, 1, "uint8", LABEL_NODATA, pixel_size)) as dst:
                dst.write(labels[k], 1)
        temps[-2].write_text("date,path\n" + "".join(f"{d},S1_{d}.tif\n" for d in names))
        with open(temps[-1], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["event", "from", "to", "first date", "where"])
            w.writerows(happened)
    return {"dates": table, "events": log, "folder": folder}
