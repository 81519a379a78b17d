"""A Sentinel-1 series from a plan: one raster per acquisition day, same-day slices mosaicked, on the
plan's grid, named and tagged as `stars segment-series` reads dates (S1_<date>.tif, TIFFTAG_DATETIME,
and dates.csv of date,path).

    written = write_series(role_plan, grid, out_dir)

Each date's file appears whole (temporary name, then renamed); a rerun reads only the dates missing.
A day with both orbit directions keeps the one with more slices (mixing geometries within a date
would make spurious change), said in the returned notes. Each file's metadata holds its orbit, its
slices' ids and the fraction of the grid they cover.
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import rasterio
from rasterio.enums import Resampling

from ..files import atomic_path
from .aoi import Grid
from .cache import provenance_note
from .plan import RolePlan
from .read import blocks, read_block, signer
from .search import item_time


def acquisition_days(items: list[dict]) -> tuple[dict[str, list[dict]], list[str]]:
    """Items by day (one orbit direction per day), and notes on the days that had two."""
    by_day: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        by_day[item_time(item)[:10]][item["properties"].get("sat:orbit_state", "unknown")].append(item)
    days, notes = {}, []
    for day, orbits in sorted(by_day.items()):
        kept = max(orbits, key=lambda o: len(orbits[o]))
        days[day] = orbits[kept]
        if len(orbits) > 1:
            notes.append(f"{day}: both orbit directions; kept {kept} ({len(orbits[kept])} slice(s)); --orbit picks one")
    return days, notes


def _write_day(role: RolePlan, grid: Grid, items: list[dict], path: Path, tick: Callable[[], None]) -> float:
    """The day's mosaic in dB (VV, VH; the first slice covering a pixel wins); returns its coverage."""
    sign = signer(role.source.signing)
    covered = 0
    profile = {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": len(role.source.bands),
               "dtype": "float32", "crs": grid.crs, "transform": grid.transform, "nodata": float("nan"),
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        for window in blocks(grid):
            mosaic = np.full((len(role.source.bands), int(window.height), int(window.width)), np.nan, np.float32)
            for item in items:
                for band, key in enumerate(role.source.bands.values()):
                    data = read_block(sign(item["assets"][key]["href"]), grid, window, Resampling.bilinear)
                    empty = np.isnan(mosaic[band]) & (data > 0)
                    mosaic[band][empty] = 10 * np.log10(data[empty])
            covered += int(np.isfinite(mosaic).all(axis=0).sum())
            dst.write(mosaic, window=window)
            tick()
        day = item_time(items[0])[:10]
        coverage = covered / max(1, grid.pixels)
        dst.descriptions = tuple(role.source.bands)
        dst.update_tags(modality="SAR", units="dB", TIFFTAG_DATETIME=f"{day.replace('-', ':')} 00:00:00",
                        orbit=items[0]["properties"].get("sat:orbit_state", "unknown"),
                        relative_orbits=",".join(sorted({str(i["properties"].get("sat:relative_orbit", "?"))
                                                         for i in items})),
                        items=",".join(i["id"] for i in items), coverage=f"{coverage:.4f}",
                        collection=role.source.collection)
    return coverage


def write_series(role: RolePlan, grid: Grid, out: Path, tick: Callable[[], None] = lambda: None) -> dict:
    """Write the missing dates' rasters, then dates.csv and provenance.json; returns what was done."""
    days, notes = acquisition_days(role.items)
    out.mkdir(parents=True, exist_ok=True)
    written, kept, coverage = [], [], {}
    for day, items in days.items():
        path = out / f"S1_{day}.tif"
        if path.exists():
            kept.append(day)
            with rasterio.open(path) as done:
                coverage[day] = float(done.tags().get("coverage", "nan"))
            continue
        with atomic_path(path) as tmp:
            coverage[day] = _write_day(role, grid, items, tmp, tick)
        written.append(day)
    with atomic_path(out / "dates.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["date", "path", "coverage"])
        writer.writerows((day, f"S1_{day}.tif", f"{coverage[day]:.4f}") for day in days)
    record = {"api": role.source.api, "collection": role.source.collection, "query": role.query,
              "licence": role.source.licence, "notes": notes,
              "dates": {day: [i["id"] for i in items] for day, items in days.items()}, **provenance_note([role])}
    with atomic_path(out / "provenance.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return {"written": written, "kept": kept, "coverage": coverage, "notes": notes}
