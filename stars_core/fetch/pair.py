"""The pair `stars train` needs, read from a plan (plan.py) onto its grid, block by block:

    sar.tif        VV, VH: median over the Sentinel-1 items, in dB (float32, NaN no data)
    optical.tif    B, G, R, NIR: median of the clear looks (the scene classification's masked codes
                   removed), reflectance x 10000 (uint16, 0 no data where fewer than `min_clear` looks)
    clear.tif      the number of clear looks per pixel (uint8)
    labels.tif     the land-cover product's codes (uint8, 0 no data) with its classes' colours and names
                   stored as a class map's are (classmap.style_class_map); classes.csv its class table
    provenance.json  the API, collections, item ids and dates, the query, licences and attribution

Every file appears together or none (written under temporary names, renamed at the end).
"""
from __future__ import annotations

import csv
import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import rasterio
from rasterio.enums import Resampling

from ..classes import ClassTable, palette
from ..classmap import style_class_map
from ..errors import InputError
from ..files import atomic_outputs
from .aoi import Grid
from .cache import provenance_note
from .plan import Plan, RolePlan
from .read import blocks, read_block, signer
from .search import item_time, open_api
from .sources import offset_counts

OUTPUTS = ("sar.tif", "optical.tif", "clear.tif", "labels.tif", "classes.csv", "provenance.json")


def _profile(grid: Grid, count: int, dtype: str, nodata) -> dict:
    return {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": count, "dtype": dtype,
            "crs": grid.crs, "transform": grid.transform, "nodata": nodata, "tiled": True, "blockxsize": 256,
            "blockysize": 256, "compress": "deflate"}


def _href(role: RolePlan, item: dict, key: str) -> str:
    """The asset's URL, signed when its source asks (just before the read: a token that expired is renewed)."""
    return signer(role.source.signing)(item["assets"][key]["href"])


def _sar(role: RolePlan, grid: Grid, path: Path, tick: Callable[[], None]) -> None:
    with rasterio.open(path, "w", **_profile(grid, 2, "float32", float("nan"))) as dst:
        for window in blocks(grid):
            for band, (name, key) in enumerate(role.source.bands.items(), start=1):
                looks = np.stack([read_block(_href(role, item, key), grid, window, Resampling.bilinear)
                                  for item in role.items])  # (dates, h, w), linear power
                looks[looks <= 0] = np.nan
                with np.errstate(all="ignore"), _quiet():
                    dst.write(10 * np.log10(np.nanmedian(looks, axis=0)).astype(np.float32), band, window=window)
            tick()
        dst.descriptions = tuple(role.source.bands)
        orbits = sorted({i["properties"].get("sat:orbit_state", "?") for i in role.items})
        dst.update_tags(modality="SAR", units="dB", composite=f"median of {len(role.items)} acquisitions",
                        orbits=",".join(orbits), collection=role.source.collection)


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: no data there, on purpose
        yield


def _clear_looks(role: RolePlan, grid: Grid, window) -> tuple[np.ndarray, np.ndarray]:
    """(looks, bands, h, w) reflectance x 10000 with NaN where masked, and the clear count (h, w)."""
    mask_key, masked = role.source.mask
    looks = []
    for item in role.items:
        scl = read_block(_href(role, item, mask_key), grid, window, Resampling.nearest)
        bad = np.isnan(scl) | np.isin(scl, masked)
        bands = np.stack([read_block(_href(role, item, key), grid, window, Resampling.bilinear,
                                     add=offset_counts(role.source, item["properties"], item["assets"][key]))
                          for key in role.source.bands.values()])
        bands[:, bad] = np.nan
        looks.append(bands)
    stack = np.stack(looks)
    return stack, np.isfinite(stack).all(axis=1).sum(axis=0)


def _optical(role: RolePlan, grid: Grid, paths: tuple[Path, Path], min_clear: int, tick) -> float:
    """Writes the composite and the clear count; returns the fraction of pixels with enough clear looks."""
    enough = 0
    with rasterio.open(paths[0], "w", **_profile(grid, len(role.source.bands), "uint16", 0)) as dst, \
            rasterio.open(paths[1], "w", **_profile(grid, 1, "uint8", None)) as cnt:
        for window in blocks(grid):
            stack, clear = _clear_looks(role, grid, window)
            with _quiet():
                median = np.nanmedian(stack, axis=0)  # (bands, h, w)
            keep = clear >= min_clear
            enough += int(keep.sum())
            median[:, ~keep] = 0
            dst.write(np.clip(np.nan_to_num(median), 0, 65535).round().astype(np.uint16), window=window)
            cnt.write(clear.astype(np.uint8)[None], window=window)
            tick()
        dst.descriptions = tuple(role.source.bands)
        dst.update_tags(modality="optical", scale="reflectance x 10000", composite=f"median of the clear looks of "
                        f"{len(role.items)} scenes, at least {min_clear} per pixel", collection=role.source.collection)
        cnt.descriptions = ("clear looks",)
    return enough / max(1, grid.pixels)


def class_table(role: RolePlan) -> ClassTable:
    """The label product's classes from its collection (`classification:classes` or `file:values`)."""
    api = open_api(role.source.api)
    asset = api.get_collection(role.source.collection).to_dict().get("item_assets", {}).get(
        role.source.bands["class"], {})
    if role.source.classes_from == "classification:classes" and asset.get("classification:classes"):
        rows = [(c["value"], c.get("description") or c.get("name"), "#" + c.get("color-hint", "").lower())
                for c in asset["classification:classes"]]
    elif asset.get("file:values"):
        rows = [(v["values"][0], v["summary"], role.source.colors.get(v["values"][0])) for v in asset["file:values"]
                if v["values"][0] != 0]
    else:
        raise InputError(f"the collection {role.source.collection} at {role.source.api} describes no classes: give "
                         f"the labels' class table to stars train yourself")
    colours = palette(len(rows))
    return ClassTable(tuple(r[0] for r in rows), tuple(r[1] for r in rows),
                      tuple(r[2] if r[2] and len(r[2]) == 7 else c for r, c in zip(rows, colours)))


def _labels(role: RolePlan, grid: Grid, path: Path, tick) -> float:
    covered = 0
    with rasterio.open(path, "w", **_profile(grid, 1, "uint8", 0)) as dst:
        for window in blocks(grid):
            codes = np.zeros((int(window.height), int(window.width)), np.float32)
            for item in role.items:  # later (newer) items fill what earlier ones left empty
                block = read_block(_href(role, item, role.source.bands["class"]), grid, window)
                empty = (codes == 0) & np.isfinite(block)
                codes[empty] = block[empty]
            covered += int((codes > 0).sum())
            dst.write(codes.astype(np.uint8), 1, window=window)
            tick()
        dst.descriptions = ("land cover",)
        dst.update_tags(collection=role.source.collection)
    return covered / max(1, grid.pixels)


def provenance(plan: Plan, extra: dict) -> dict:
    r = plan.request
    return {"area": {"label": r.area.label, "bounds_lonlat": list(r.area.bounds)},
            "grid": {"crs": r.grid.crs.to_string(), "transform": list(r.grid.transform)[:6], "width": r.grid.width,
                     "height": r.grid.height},
            "dates": [r.start, r.end], "orbit": r.orbit, "relative_orbits": list(r.relative_orbits),
            "max_cloud": r.max_cloud, **extra,
            "sources": [{"role": p.role, "api": p.source.api, "collection": p.source.collection, "query": p.query,
                         "licence": p.source.licence,
                         "attribution": p.source.attribution.replace("{year}", _years(p.items)),
                         "items": [{"id": i["id"], "datetime": item_time(i)} for i in p.items]}
                        for p in plan.roles]}


def _years(items: list[dict]) -> str:
    years = sorted({item_time(i)[:4] for i in items if item_time(i)})
    return "-".join(dict.fromkeys([years[0], years[-1]])) if years else "year"


def write_pair(plan: Plan, out: Path, min_clear: int = 1, tick: Callable[[], None] = lambda: None) -> dict:
    """Read the plan's items onto its grid and write the pair into `out` (see the module docstring)."""
    roles = {p.role: p for p in plan.roles}
    table = class_table(roles["labels"])
    with atomic_outputs(*(out / name for name in OUTPUTS)) as temps:
        tmp = dict(zip(OUTPUTS, temps))
        _sar(roles["sar"], plan.request.grid, tmp["sar.tif"], tick)
        clear = _optical(roles["optical"], plan.request.grid, (tmp["optical.tif"], tmp["clear.tif"]), min_clear, tick)
        covered = _labels(roles["labels"], plan.request.grid, tmp["labels.tif"], tick)
        style_class_map(tmp["labels.tif"], table)  # colours and names, as every class map of the toolbox has
        with open(tmp["classes.csv"], "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["value", "name", "color"])
            writer.writerows(zip(table.values, table.names, table.colors))
        facts = {"optical_clear_fraction": round(clear, 4), "labels_covered_fraction": round(covered, 4),
                 "min_clear_looks": min_clear, **provenance_note(plan.roles)}
        tmp["provenance.json"].write_text(json.dumps(provenance(plan, facts), indent=1))
    return facts
