"""A Sentinel-1 series from a plan: one raster per acquisition day, same-day slices mosaicked, on the
plan's grid, named and tagged as `stars segment-series` reads dates (S1_<date>.tif, TIFFTAG_DATETIME,
and dates.csv of date,path,coverage,orbit,relative_orbits,items).

    dated = series_dates(plan, out)     # the days, notes, and why each date's raster is written
    lines = plan_series(plan, out, dated)     # before any read: which dates are written and why, notes
    written = write_series(plan, out, dated)

One raster per day, not per day and orbit direction: `stars segment-series` takes one raster per
date. A day with both directions keeps the one whose slices' footprints cover more of the area (then
the one with more slices), said in the notes; a series whose dates mix directions is warned about in
the log and in provenance.json (ascending and descending passes see the ground from opposite sides:
maps of the two differ by geometry alone). For both geometries, fetch two series (--orbit ascending,
--orbit descending) into two folders.

Each date's file appears whole (temporary name, then renamed), its metadata holding what made it:
its orbit direction and relative orbits, its slices' ids, its collection, and its grid (the file's
own CRS, transform and size). A rerun keeps a date's file only when all of that is what this run
would write, and makes it again otherwise, saying why in one line (as `stars segment-series` does
for its maps).
"""
from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import rasterio
import rasterio.errors
from rasterio.enums import Resampling

from ..files import atomic_path
from .aoi import Area, Grid
from .cache import provenance_note
from .plan import Plan, RolePlan, footprint_coverage, window_estimate
from .read import blocks, read_block, signer
from .search import item_time

NEW = "not written yet"
COLUMNS = ("date", "path", "coverage", "orbit", "relative_orbits", "items")


def acquisition_days(items: list[dict], area: Area | None = None,
                     grid: Grid | None = None) -> tuple[dict[str, list[dict]], list[str]]:
    """Items by day, one orbit direction per day: with `area` and `grid` the direction whose
    footprints cover more of the area, then the one with more slices; notes on the days that had two."""
    by_day: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        by_day[item_time(item)[:10]][item["properties"].get("sat:orbit_state", "unknown")].append(item)
    days, notes = {}, []
    for day, orbits in sorted(by_day.items()):
        both = len(orbits) > 1 and area is not None and grid is not None
        cover = {o: footprint_coverage(s, area, grid) if both else 0.0 for o, s in orbits.items()}
        kept = max(orbits, key=lambda o: (round(cover[o], 3), len(orbits[o])))
        days[day] = orbits[kept]
        if len(orbits) > 1:
            said = ", ".join(f"{o} {len(s)} slice(s)" + (f" covering {cover[o]:.0%} of the area" if both else "")
                             for o, s in sorted(orbits.items()))
            notes.append(f"{day}: both orbit directions ({said}); kept {kept}, one raster per date; --orbit picks "
                         f"one")
    return days, notes


def mixed_orbits(days: dict[str, list[dict]]) -> list[str]:
    """One warning when the series' dates are of both orbit directions, else none."""
    count = Counter(items[0]["properties"].get("sat:orbit_state", "unknown") for items in days.values())
    if len(count) < 2:
        return []
    said = ", ".join(f"{n} {o}" for o, n in sorted(count.items()))
    return [f"warning: the series mixes orbit directions across its dates ({said}): their maps differ by viewing "
            f"geometry alone (spurious change); fetch with --orbit ascending or --orbit descending for change"]


def made_by(items: list[dict], collection: str) -> dict[str, str]:
    """What a date's raster is made of, as its tags hold it (the grid is the file's own)."""
    props = [i["properties"] for i in items]
    return {"orbit": props[0].get("sat:orbit_state", "unknown"),
            "relative_orbits": ",".join(sorted({str(p.get("sat:relative_orbit", "?")) for p in props})),
            "items": ",".join(i["id"] for i in items), "collection": collection}


def _grid_label(crs, transform, width: int, height: int) -> str:
    t = transform
    return f"{crs.to_string() if crs else 'no CRS'} {width}x{height} from ({t.c:.2f}, {t.f:.2f}) step {t.a:g}"


def redo_reasons(path: Path, grid: Grid, wanted: dict[str, str]) -> list[str]:
    """Why the date's raster at `path` must be written (empty: it is what this run would write)."""
    if not path.is_file():
        return [NEW]
    try:
        with rasterio.open(path) as ds:
            tags, crs, transform, size = ds.tags(), ds.crs, ds.transform, (ds.width, ds.height)
    except rasterio.errors.RasterioIOError:
        return [f"{path.name} cannot be read"]
    if "items" not in tags:
        return ["its tags do not say what made it (not written by stars fetch series)"]
    why = []
    if crs != grid.crs or size != (grid.width, grid.height) or not transform.almost_equals(grid.transform, 1e-6):
        why.append(f"another grid ({_grid_label(crs, transform, *size)}, now "
                   f"{_grid_label(grid.crs, grid.transform, grid.width, grid.height)})")
    if (tags.get("orbit"), tags.get("relative_orbits")) != (wanted["orbit"], wanted["relative_orbits"]):
        why.append(f"another orbit ({tags.get('orbit')} {tags.get('relative_orbits')}, now {wanted['orbit']} "
                   f"{wanted['relative_orbits']})")
    old, new = tags["items"].split(","), wanted["items"].split(",")
    if old != new or tags.get("collection") != wanted["collection"]:
        why.append(f"other slices ({len(old)} of {tags.get('collection')}, now {len(new)} of "
                   f"{wanted['collection']}: {len(set(new) - set(old))} new)")
    return why


def series_dates(plan: Plan, out: Path) -> tuple[dict[str, list[dict]], list[str], dict[str, list[str]]]:
    """The series' days (one orbit direction each), its notes, and for each day why its raster must
    be written ([]: the raster in `out` is what this run would write, kept)."""
    role, grid = plan.roles[0], plan.request.grid
    days, notes = acquisition_days(role.items, plan.request.area, grid)
    why = {day: redo_reasons(out / f"S1_{day}.tif", grid, made_by(items, role.source.collection))
           for day, items in days.items()}
    stale = sorted(p.name for p in out.glob("S1_*.tif") if p.stem[3:] not in days) if out.is_dir() else []
    if stale:
        notes.append(f"{len(stale)} raster(s) in {out} are not of this run and not in its dates.csv: "
                     f"{', '.join(stale[:5])}{' ...' if len(stale) > 5 else ''}")
    return days, notes + mixed_orbits(days), why


def plan_series(plan: Plan, out: Path, dated: tuple) -> list[str]:
    """Before any read: set the role's `unread` bytes (the slices of dates kept as they are in `out`
    and of a day's other orbit direction) and return the lines to say: the dates to write and why,
    notes. `dated`: `series_dates(plan, out)`."""
    role = plan.roles[0]
    days, notes, why = dated
    read = {i["id"] for day, items in days.items() if why[day] for i in items}
    unread = [i for i in role.items if i["id"] not in read]
    role.unread_ids = frozenset(i["id"] for i in unread)
    estimates = [window_estimate(i, role.source, plan.request.grid) for i in unread]
    role.unread, role.unread_pixels = sum(b for b, _ in estimates), sum(p for _, p in estimates)
    kept = [day for day in days if not why[day]]
    lines = [f"series: {len(days)} date(s), {len(days) - len(kept)} to write, {len(kept)} kept as they are in {out}"]
    lines += [f"    {day}: made again: {'; '.join(why[day])}" for day in days if why[day] not in ([], [NEW])]
    return lines + notes


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
                        coverage=f"{coverage:.4f}", **made_by(items, role.source.collection))
    return coverage


def write_series(plan: Plan, out: Path, dated: tuple, tick: Callable[[], None] = lambda: None) -> dict:
    """Write the dates whose rasters are missing or were made otherwise (`dated`: `series_dates(plan,
    out)`, as the plan said them), then dates.csv and provenance.json; returns what was done (`remade`:
    day -> why, for rasters replaced)."""
    from .pair import provenance

    role = plan.roles[0]
    days, notes, why = dated
    out.mkdir(parents=True, exist_ok=True)
    written, kept, remade, coverage = [], [], {}, {}
    for day, items in days.items():
        path = out / f"S1_{day}.tif"
        if not why[day]:
            kept.append(day)
            with rasterio.open(path) as done:
                coverage[day] = float(done.tags().get("coverage", "nan"))
            continue
        with atomic_path(path) as tmp:
            coverage[day] = _write_day(role, plan.request.grid, items, tmp, tick)
        written.append(day)
        if why[day] != [NEW]:
            remade[day] = "; ".join(why[day])
    rows = [{"date": day, "path": f"S1_{day}.tif", "coverage": f"{coverage[day]:.4f}",
             **made_by(items, role.source.collection)} for day, items in days.items()]
    with atomic_path(out / "dates.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    acquisitions = {r["date"]: {**{k: r[k] for k in ("orbit", "relative_orbits", "coverage")},
                                "items": r["items"].split(",")} for r in rows}
    record = provenance(plan, {"notes": notes, "acquisitions": acquisitions, "remade": remade,
                               **provenance_note([role])})
    with atomic_path(out / "provenance.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return {"written": written, "kept": kept, "remade": remade, "coverage": coverage, "notes": notes}
