"""What a fetch would read, before any pixel is read: the items of each role, their dates, orbits and
cloud cover, and the megabytes and pixels the windows over the grid would take.

    plan = plan_pair(request)      # searches; reads no pixel
    print(plan.summary())
    plan.check_size(max_gb)        # InputError when over the limit

Estimates count the stored bytes of each asset's window over the grid at the asset's own resolution,
uncompressed (COGs are usually smaller: the estimate errs on the safe side).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from rasterio.features import rasterize
from rasterio.transform import Affine
from rasterio.warp import transform_bounds, transform_geom

from ..errors import InputError
from .aoi import LONLAT, Area, Grid
from .search import item_time, open_api, search
from .sources import Source

BYTES = {"uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "uint32": 4, "int32": 4, "float32": 4, "float64": 8}


@dataclass
class Request:
    area: Area
    grid: Grid
    start: str
    end: str
    sources: dict[str, Source]  # role -> source
    orbit: str = "both"  # "ascending", "descending" or "both" (Sentinel-1)
    max_cloud: float = 60.0  # percent, Sentinel-2 items above are not searched
    relative_orbits: tuple[int, ...] = ()  # Sentinel-1 relative orbits searched (empty: any)


@dataclass
class RolePlan:
    role: str
    source: Source
    items: list[dict]
    query: dict | None
    bytes: int = 0
    pixels: int = 0
    coverage: float | None = None  # labels: the fraction of the area under the items' footprints
    cached: int = 0  # of `bytes`, what the fetch cache already holds (cache.mark_cached)
    unread: int = 0  # of `bytes`, what the write will not read (series.plan_series: dates already in the output)
    unread_ids: frozenset[str] = frozenset()  # the ids of those items (not counted as cached either)
    cached_pixels: int = 0  # of `pixels`, as `cached` of `bytes`
    unread_pixels: int = 0  # of `pixels`, as `unread` of `bytes`

    @property
    def to_read(self) -> int:
        return self.bytes - self.cached - self.unread

    @property
    def pixels_to_read(self) -> int:
        return self.pixels - self.cached_pixels - self.unread_pixels


@dataclass
class Plan:
    request: Request
    roles: list[RolePlan] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.roles)

    @property
    def cached(self) -> int:
        return sum(r.cached for r in self.roles)

    @property
    def to_read(self) -> int:
        return sum(r.to_read for r in self.roles)

    def summary(self) -> list[str]:
        g = self.request.grid
        lines = [f"grid: {g.crs.to_string()}, {g.transform.a:g} m pixels, {g.width} x {g.height} "
                 f"({g.pixels / 1e6:.2f} Mpx){'; ' + g.note if g.note else ''}"]
        for r in self.roles:
            lines.append(f"{r.role}: {len(r.items)} item(s) of {r.source.collection} at {r.source.api}, about "
                         f"{r.to_read / 1e6:.1f} MB and {r.pixels_to_read / 1e6:.2f} Mpx to read"
                         + (f" ({r.cached / 1e6:.1f} MB more already cached)" if r.cached else "")
                         + (f" ({r.unread / 1e6:.1f} MB of items not read: their dates are already in the output "
                            f"folder, or another orbit direction was kept for their day)" if r.unread else ""))
            lines += ["    " + describe(item, g) for item in r.items]
            if r.role == "sar" and r.items:
                lines.append(f"{r.role}: relative orbits {relative_orbits(r.items)}")
            if r.coverage is not None:
                lines.append(f"{r.role}: the items' footprints cover {r.coverage:.0%} of the area")
        lines.append(f"total: about {self.to_read / 1e6:.1f} MB to read"
                     + (f", {self.cached / 1e6:.1f} MB already cached" if self.cached else ""))
        return lines

    def check_size(self, max_gb: float) -> None:
        if self.to_read > max_gb * 1e9:
            raise InputError(f"this fetch would read about {self.to_read / 1e9:.2f} GB, more than "
                             f"--max-gb {max_gb:g}: "
                             f"shrink the area or the dates, or raise --max-gb")

    def check_labels(self, min_coverage: float = 1.0) -> None:
        """Refuse labels whose items cover less of the area than `min_coverage` (before any pixel is read)."""
        for r in self.roles:
            if r.coverage is not None and r.coverage < min_coverage - 1e-9:
                allow, said = math.floor(r.coverage * 100) / 100, math.floor(r.coverage * 1000) / 10
                raise InputError(f"the labels of {r.source.collection} at {r.source.api} cover only {said:g}% "
                                 f"of the area (their items' footprints): choose another collection "
                                 f"(--labels-source, --labels-collection), shrink the area to what they cover, or "
                                 f"pass --min-label-coverage {allow:g} to train on the covered part (the rest no data)")


def parse_relative_orbits(value) -> tuple[int, ...]:
    """--relative-orbit as given: None, a number, "117,168", or a list of those (repeated option)."""
    if value is None or value == "":
        return ()
    parts = [value] if isinstance(value, (str, int)) else list(value)
    texts = [t.strip() for p in parts for t in str(p).split(",") if t.strip()]
    try:
        orbits = tuple(sorted({int(t) for t in texts}))
    except ValueError:
        raise InputError(f"--relative-orbit {','.join(texts)!r} is not a list of numbers: give e.g. 117 or 117,168 "
                         f"(the dry run lists each item's relative orbit)") from None
    if any(not 1 <= o <= 175 for o in orbits):
        raise InputError(f"--relative-orbit {','.join(map(str, orbits))}: Sentinel-1 relative orbits run from 1 to "
                         f"175 (the dry run lists each item's)")
    return orbits


def describe(item: dict, grid: Grid | None = None) -> str:
    """One line: id, date, orbit or cloud cover, and the item's CRS when it is not the grid's (warped)."""
    p = item.get("properties", {})
    parts = [item.get("id", "?"), item_time(item)[:10] or "no date"]
    epsg = p.get("proj:epsg")
    if grid is not None and epsg and grid.crs.to_epsg() != int(epsg):
        parts.append(f"EPSG:{epsg}, warped")
    if "sat:orbit_state" in p:
        parts.append(f"{p['sat:orbit_state']}, relative orbit {p.get('sat:relative_orbit', '?')}")
    if "eo:cloud_cover" in p:
        parts.append(f"cloud {float(p['eo:cloud_cover']):.1f}%")
    return "  ".join(str(s) for s in parts)


def relative_orbits(items: list[dict]) -> str:
    """The Sentinel-1 relative orbits of `items`, each with its direction and item count: "117 ascending (2)"."""
    seen: dict[tuple[str, str], int] = {}
    for item in items:
        p = item.get("properties", {})
        key = (str(p.get("sat:relative_orbit", "?")), p.get("sat:orbit_state", "?"))
        seen[key] = seen.get(key, 0) + 1
    return ", ".join(f"{o} {d} ({n})" for (o, d), n in sorted(seen.items(), key=lambda kv: kv[0][0].zfill(3)))


def asset_resolution(asset: dict) -> float:
    if asset.get("proj:transform"):
        return abs(float(asset["proj:transform"][0]))
    band = (asset.get("raster:bands") or [{}])[0]
    return float(asset.get("gsd") or band.get("spatial_resolution") or 10.0)


def window_estimate(item: dict, source: Source, grid: Grid, keys: list[str] | None = None) -> tuple[int, int]:
    """Bytes and pixels of the item's assets (or those of `keys`) over the grid, at their own resolutions."""
    g, box = grid.bounds, item.get("bbox", [])
    box = [box[0], box[1], box[3], box[4]] if len(box) == 6 else box  # a 3-D bbox: drop the heights
    b = transform_bounds(LONLAT, grid.crs, *box, densify_pts=21) if len(box) == 4 else g
    w, h = max(0.0, min(g[2], b[2]) - max(g[0], b[0])), max(0.0, min(g[3], b[3]) - max(g[1], b[1]))
    total_bytes = total_pixels = 0
    for key in source.assets if keys is None else keys:
        asset = item.get("assets", {}).get(key)
        if asset is None:
            raise InputError(f"item {item.get('id')} of {source.collection} has no asset {key!r} (it has "
                             f"{', '.join(item.get('assets', {}))}): is this the collection the source expects?")
        res = asset_resolution(asset)
        pixels = int(round(w / res) * round(h / res))
        stored = source.dtype if not source.mask or key != source.mask[0] else "uint8"  # a scene classification
        dtype = (asset.get("raster:bands") or [{}])[0].get("data_type") or stored
        total_bytes += pixels * BYTES.get(dtype, 4)
        total_pixels += pixels
    return total_bytes, total_pixels


def _query(role: str, request: Request) -> dict | None:
    if role == "sar":
        query = {"sat:orbit_state": {"eq": request.orbit}} if request.orbit in ("ascending", "descending") else {}
        if len(request.relative_orbits) == 1:  # several: kept after the search (the query extension has no "in")
            query["sat:relative_orbit"] = {"eq": request.relative_orbits[0]}
        return query or None
    if role == "optical":
        return {"eo:cloud_cover": {"lt": request.max_cloud}}
    return None


def plan_pair(request: Request) -> Plan:
    """Search every role's source; labels are searched at any date and the newest item covering is kept."""
    plan = Plan(request)
    apis: dict[str, object] = {}
    for role, source in request.sources.items():
        api = apis.setdefault(source.api, open_api(source.api))
        query = _query(role, request)
        dated = role != "labels"
        items = search(api, source, request.area, request.start if dated else None, request.end if dated else None,
                       query)
        if not dated:
            items = _newest_per_footprint(items)
        if role == "sar" and request.relative_orbits:
            items = _on_orbits(items, request.relative_orbits, source)
        role_plan = RolePlan(role, source, items, query,
                             coverage=None if dated else footprint_coverage(items, request.area, request.grid))
        for item in items:
            b, p = window_estimate(item, source, request.grid)
            role_plan.bytes += b
            role_plan.pixels += p
        plan.roles.append(role_plan)
    return plan


def _on_orbits(items: list[dict], orbits: tuple[int, ...], source: Source) -> list[dict]:
    """The items on one of `orbits` (their `sat:relative_orbit`); none: an InputError naming those found."""
    kept = [i for i in items if i["properties"].get("sat:relative_orbit") in orbits]
    if not kept:
        raise InputError(f"no {source.collection} items on relative orbit(s) {', '.join(map(str, orbits))} at "
                         f"{source.api} for these dates and area; their items are on {relative_orbits(items)}: "
                         f"choose among those with --relative-orbit")
    return kept


def _newest_per_footprint(items: list[dict]) -> list[dict]:
    """A static product in several versions (WorldCover 2020, 2021): the newest of each tile."""
    newest: dict[tuple, dict] = {}
    for item in items:  # oldest first, so a later one replaces
        newest[tuple(round(v, 3) for v in item.get("bbox", []))] = item
    return list(newest.values())


def footprint_coverage(items: list[dict], area: Area, grid: Grid, cells: int = 512) -> float:
    """The fraction of the area under the items' footprints (their `geometry`), counted on the grid
    coarsened to at most `cells` across; a footprint touching a cell covers it, so an edge shared
    with the area (an area drawn from a tile) counts as covered."""
    scale = max(1.0, max(grid.width, grid.height) / cells)
    shape = (math.ceil(grid.height / scale), math.ceil(grid.width / scale))
    transform = grid.transform * Affine.scale(scale)
    aoi = transform_geom(LONLAT, grid.crs, area.geometry)
    inside = rasterize([aoi], out_shape=shape, transform=transform, fill=0, dtype="uint8").astype(bool)
    if not inside.any():  # an area thinner than a cell
        inside = rasterize([aoi], out_shape=shape, transform=transform, fill=0, dtype="uint8",
                           all_touched=True).astype(bool)
    feet = [transform_geom(LONLAT, grid.crs, i["geometry"]) for i in items if i.get("geometry")]
    if not inside.any():
        return 1.0  # the area is off the grid (--grid elsewhere): none of it to cover
    if not feet:
        return 0.0
    covered = rasterize(feet, out_shape=shape, transform=transform, fill=0, dtype="uint8", all_touched=True)
    return float(np.count_nonzero(covered[inside]) / np.count_nonzero(inside))
