"""The area of interest a user names, as a polygon in longitude/latitude, and the grid the fetched
rasters share: by default the UTM zone of the area's centre, 10 m pixels on the zone's 10 m lattice.

    area = parse_aoi("10.2,46.9,10.3,47.0")          # a bbox, lon/lat unless aoi_crs says otherwise
    area = parse_aoi("fields.gpkg")                   # a vector file: the union of its features
    area = parse_aoi("scene.tif")                     # a raster: its footprint
    grid = output_grid(area)                          # or output_grid(area, crs=..., res=..., like=...)
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import transform_bounds, transform_geom

from ..errors import InputError

LONLAT = CRS.from_epsg(4326)


@dataclass(frozen=True)
class Area:
    """The AOI: `geometry` a GeoJSON polygon in lon/lat, `bounds` its lon/lat bounds, `label` what the user gave."""
    geometry: dict
    bounds: tuple[float, float, float, float]
    label: str
    note: str = ""

    @property
    def centre(self) -> tuple[float, float]:
        return (self.bounds[0] + self.bounds[2]) / 2, (self.bounds[1] + self.bounds[3]) / 2


@dataclass(frozen=True)
class Grid:
    """Where every fetched raster lands: CRS, transform, size."""
    crs: CRS
    transform: Affine
    width: int
    height: int
    note: str = ""

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return t.c, t.f + self.height * t.e, t.c + self.width * t.a, t.f

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _box(b: tuple[float, float, float, float]) -> dict:
    return {"type": "Polygon", "coordinates": [[(b[0], b[1]), (b[2], b[1]), (b[2], b[3]), (b[0], b[3]), (b[0], b[1])]]}


def _bbox(text: str, aoi_crs: str | None) -> Area:
    try:
        b = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--aoi {text!r} is neither a file nor minx,miny,maxx,maxy: give four numbers or a path")
    if len(b) != 4:
        raise InputError(f"--aoi needs four numbers minx,miny,maxx,maxy, got {len(b)}")
    if not (b[2] > b[0] and b[3] > b[1]):
        raise InputError(f"--aoi {text} has zero area (max must exceed min): give minx,miny,maxx,maxy")
    crs = CRS.from_user_input(aoi_crs) if aoi_crs else LONLAT
    if crs.is_geographic:
        _check_lonlat(b, text)
        return Area(_box(b), b, text)
    lonlat = transform_bounds(crs, LONLAT, *b)
    return Area(transform_geom(crs, LONLAT, _box(b)), lonlat, f"{text} ({crs.to_string()})")


def _check_lonlat(b: tuple[float, ...], text: str) -> None:
    if any(abs(v) > 90 for v in (b[1], b[3])) and all(abs(v) <= 90 for v in (b[0], b[2])):
        raise InputError(f"--aoi {text}: latitudes beyond 90 degrees; longitude and latitude look swapped: "
                         f"give minlon,minlat,maxlon,maxlat ({b[1]},{b[0]},{b[3]},{b[2]})")
    if any(abs(v) > 180 for v in (b[0], b[2])) or any(abs(v) > 90 for v in (b[1], b[3])):
        raise InputError(f"--aoi {text} is not longitude/latitude: name its CRS with --aoi-crs (e.g. EPSG:32632)")


def _raster_footprint(path: Path) -> Area:
    import rasterio

    with rasterio.open(path) as src:
        if src.crs is None:
            raise InputError(f"--aoi {path} has no CRS: georeference it, or give a bbox")
        b = tuple(src.bounds)
        return Area(transform_geom(src.crs, LONLAT, _box(b)), transform_bounds(src.crs, LONLAT, *b), str(path))


def _vector_union(path: Path) -> Area:
    from osgeo import ogr, osr

    ds = ogr.Open(str(path))
    if ds is None or ds.GetLayerCount() == 0:
        raise InputError(f"--aoi {path} is neither a raster nor a vector file GDAL can open")
    layer = ds.GetLayer(0)
    union = ogr.Geometry(ogr.wkbMultiPolygon)
    for feature in layer:
        geom = feature.GetGeometryRef()
        if geom is not None:
            union = union.Union(geom)
    if union.IsEmpty() or union.GetArea() == 0:
        raise InputError(f"--aoi {path}: its features have zero area (points or lines?): give polygons or a bbox")
    srs = layer.GetSpatialRef()
    if srs is None:
        raise InputError(f"--aoi {path} has no CRS: set one (e.g. in QGIS), or give a bbox")
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    union.Transform(osr.CoordinateTransformation(srs, wgs84))
    # a multi-geometry counts its polygons; a polygon's count is its rings (a hole is no second polygon)
    several = ogr.GT_Flatten(union.GetGeometryType()) != ogr.wkbPolygon and union.GetGeometryCount() > 1
    hull = union.ConvexHull() if several else union
    geometry = json.loads(hull.ExportToJson())
    minx, maxx, miny, maxy = union.GetEnvelope()
    note = "several polygons: searched over their convex hull" if several else ""
    return Area(geometry, (minx, miny, maxx, maxy), str(path), note)


def parse_aoi(text: str, aoi_crs: str | None = None) -> Area:
    """A bbox `minx,miny,maxx,maxy` (lon/lat unless `aoi_crs`), a vector file or a raster."""
    path = Path(os.path.expanduser(text))
    if not path.exists():
        return _bbox(text, aoi_crs)
    try:
        return _raster_footprint(path)
    except InputError:
        raise
    except Exception:  # not a raster: a vector file then
        return _vector_union(path)


def utm_crs(lon: float, lat: float) -> CRS:
    """The UTM zone of a point (north or south), as an EPSG code."""
    zone = min(60, int(math.floor((lon + 180) / 6)) + 1)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def output_grid(area: Area, crs: str | None = None, res: float = 10.0, like: str | None = None) -> Grid:
    """The grid of the outputs: `like` (a raster's own grid) wins; else `crs` (default: the UTM zone of
    the area's centre) with `res`-metre pixels whose edges sit on multiples of `res`, covering the area."""
    if like:
        import rasterio

        with rasterio.open(like) as src:
            return Grid(src.crs, src.transform, src.width, src.height, f"the grid of {like}")
    if not (res > 0 and math.isfinite(res)):
        raise InputError(f"--res must be a positive number of CRS units, got {res}")
    target = CRS.from_user_input(crs) if crs else utm_crs(*area.centre)
    note = ""
    if not crs:
        zones = {utm_crs(lon, area.centre[1]).to_epsg() for lon in (area.bounds[0], area.bounds[2])}
        if len(zones) > 1:
            note = (f"the area spans UTM zones {', '.join(f'EPSG:{z}' for z in sorted(zones))}: its centre's "
                    f"EPSG:{target.to_epsg()} is used (--crs picks another)")
    b = transform_bounds(LONLAT, target, *area.bounds, densify_pts=21)
    left, bottom = math.floor(b[0] / res) * res, math.floor(b[1] / res) * res
    right, top = math.ceil(b[2] / res) * res, math.ceil(b[3] / res) * res
    width, height = int(round((right - left) / res)), int(round((top - bottom) / res))
    return Grid(target, Affine(res, 0, left, 0, -res, top), width, height, note)
