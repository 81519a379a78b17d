"""Raster and vector I/O shared by training, segmentation and evaluation (rasterio, GDAL/OGR)."""
from __future__ import annotations

import math
import os
import threading
from contextlib import ExitStack
from typing import Any, Callable

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import from_bounds

from .errors import InputError

EARTH_RADIUS = 6_371_008.8  # metres (mean radius): pixel areas on a geographic CRS


def open_raster(path: str | os.PathLike, role: str, require_crs: bool = True) -> rasterio.io.DatasetReader:
    """Open a raster, with an error that names its role when it is missing, unreadable or (unless
    `require_crs` is False, as for chip folders) without a CRS."""
    import warnings

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{role} raster {path!r} not found")
    try:
        with warnings.catch_warnings():  # chips without georeferencing are expected in chip folders
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"{role} {path!r} is not a raster GDAL can read: {exc}") from None
    if ds.crs is None and require_crs:
        ds.close()
        raise InputError(f"{role} {path!r} has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:XXXX) first")
    return ds


def same_grid(a, b, tolerance: float = 1e-6) -> bool:
    return (
        a.crs == b.crs and a.width == b.width and a.height == b.height
        and a.transform.almost_equals(b.transform, precision=tolerance)
    )


def check_overlap(ref, other, ref_name: str, other_name: str) -> None:
    """Raise ValueError when `other` does not overlap the grid of `ref` at all."""
    left, bottom, right, top = transform_bounds(other.crs, ref.crs, *other.bounds, densify_pts=21)
    r = ref.bounds
    if left >= r.right or right <= r.left or bottom >= r.top or top <= r.bottom:
        raise InputError(
            f"{other_name} does not overlap {ref_name}: their footprints are disjoint once both are in "
            f"{ref.crs.to_string()}; check that the files belong to the same area and carry the right CRS"
        )


def aligned(ref, src, resampling: Resampling, ref_name: str, src_name: str):
    """`src` as seen on the grid of `ref`: itself when the grids match, else a WarpedVRT."""
    if same_grid(ref, src):
        return src
    check_overlap(ref, src, ref_name, src_name)
    nodata = src.nodata
    if nodata is None:
        nodata = 0 if np.dtype(src.dtypes[0]).kind in "ui" else np.nan
        kwargs: dict[str, Any] = {"src_nodata": None, "nodata": nodata, "add_alpha": False}
    else:
        kwargs = {"nodata": nodata}
    return WarpedVRT(
        src, crs=ref.crs, transform=ref.transform, width=ref.width, height=ref.height,
        resampling=resampling, **kwargs,
    )


def valid_mask(ds, data: np.ndarray, window=None) -> np.ndarray:
    """(H, W) bool: every band holds data (GDAL mask, declared no-data and NaN/inf all respected)."""
    masks = ds.read_masks(window=window, boundless=False)
    valid = (masks > 0).all(axis=0)
    if data.dtype.kind == "f":
        valid &= np.isfinite(data).all(axis=0)
    if ds.nodata is not None and not np.isnan(ds.nodata):
        valid &= (data != ds.nodata).any(axis=0) | (data.shape[0] == 0)
    return valid


def band_names(ds) -> list[str]:
    return [d or f"band {i + 1}" for i, d in enumerate(ds.descriptions)]


def pixel_size(ds) -> tuple[float, float]:
    return abs(ds.transform.a), abs(ds.transform.e)


def metres_per_pixel(crs, size, latitude: float = 0.0) -> float:
    """Mean pixel side in metres (geographic CRS: at the given latitude)."""
    side = math.sqrt(abs(size[0] * size[1]))
    if crs.is_geographic:
        return side * 111_320.0 * math.sqrt(max(math.cos(math.radians(latitude)), 1e-6))
    try:
        return side * crs.linear_units_factor[1]
    except Exception:  # CRS without a known linear unit: assume metres
        return side


def centre_latitude(ds) -> float:
    """Latitude of the raster's centre."""
    from rasterio.warp import transform

    cx, cy = (ds.bounds.left + ds.bounds.right) / 2, (ds.bounds.top + ds.bounds.bottom) / 2
    _, lat = transform(ds.crs, "EPSG:4326", [cx], [cy])
    return float(lat[0])


def pixel_area(ds) -> float:
    """Area of one pixel in m2 (a geographic CRS: at the centre latitude); 0 without a CRS."""
    if ds.crs is None:
        return 0.0
    side = metres_per_pixel(ds.crs, pixel_size(ds), centre_latitude(ds) if ds.crs.is_geographic else 0.0)
    return side * side


def read_polygons(path: str | os.PathLike, field: str | None = None, layer: str | None = None,
                  keep_empty: bool = False):
    """Polygons of a vector file: (crs WKT, [(GeoJSON geometry, field value or None), ...]).
    Features without a geometry are left out, or with `keep_empty` listed with geometry None."""
    from osgeo import ogr

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"vector file {path!r} not found")
    ds = ogr.Open(path)
    if ds is None:
        raise InputError(f"{path!r} is not a vector file GDAL/OGR can read")
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    if lyr is None:
        raise InputError(f"layer {layer!r} not found in {path!r}")
    srs = lyr.GetSpatialRef()
    if srs is None:
        raise InputError(f"{path!r} has no CRS; assign one before using it")
    defn = lyr.GetLayerDefn()
    names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    if field is not None and field not in names:
        raise InputError(f"field {field!r} not found in {path!r}; its fields are {names}")
    items = []
    for feature in lyr:
        geom = feature.GetGeometryRef()
        value = feature.GetField(field) if field is not None else None
        if geom is None or geom.IsEmpty():
            if keep_empty:
                items.append((None, value))
            continue
        items.append((_geojson(geom), value))
    return srs.ExportToWkt(), items


def _geojson(geom) -> dict:
    import json

    return json.loads(geom.ExportToJson())


def geometries_in(crs_wkt: str, items, dst_crs) -> list[tuple[dict, Any]]:
    """Reproject (geometry, value) pairs into `dst_crs`."""
    src = rasterio.crs.CRS.from_wkt(crs_wkt)
    if src == dst_crs:
        return list(items)
    return [(None if g is None else transform_geom(src, dst_crs, g), v) for g, v in items]


def window_of(src, geom: dict):
    """Pixel window of the raster covering the polygon's bounding box, or None when disjoint."""
    from rasterio.features import bounds

    left, bottom, right, top = bounds(geom)
    b = src.bounds
    left, right = max(left, b.left), min(right, b.right)
    bottom, top = max(bottom, b.bottom), min(top, b.top)
    if left >= right or bottom >= top:
        return None
    w = from_bounds(left, bottom, right, top, transform=src.transform)
    col, row = max(0, math.floor(w.col_off + 1e-6)), max(0, math.floor(w.row_off + 1e-6))
    width = min(math.ceil(w.col_off + w.width - 1e-6), src.width) - col
    height = min(math.ceil(w.row_off + w.height - 1e-6), src.height) - row
    if width <= 0 or height <= 0:
        return None
    return rasterio.windows.Window(col, row, width, height)


def crs_label(crs) -> str:
    """A CRS as people name it in a message: EPSG:n, "a custom CRS", or "none"."""
    epsg = crs.to_epsg() if crs is not None else None
    return f"EPSG:{epsg}" if epsg else ("none" if crs is None else "a custom CRS")


def row_areas(ds, rows: np.ndarray) -> np.ndarray:
    """Area in m2 of one pixel of each given row (on a geographic CRS a pixel shrinks with latitude)."""
    t = ds.transform
    if ds.crs is not None and ds.crs.is_geographic:
        lat_top = np.radians(t.f + rows * t.e)
        lat_bottom = np.radians(t.f + (rows + 1) * t.e)
        return EARTH_RADIUS ** 2 * abs(math.radians(t.a)) * np.abs(np.sin(lat_top) - np.sin(lat_bottom))
    return np.full(len(rows), pixel_area(ds) if ds.crs is not None else abs(t.a * t.e - t.b * t.d))


class ThreadHandles:
    """Rasters opened once in every thread that reads them: GDAL handles must not be shared between
    threads, and rasterio 1.4 ties a dataset to the GDAL environment of the thread that opened it,
    so each thread also closes its own (`close_in`)."""

    def __init__(self, open_all: Callable[[ExitStack], Any]):
        self._open_all, self._local = open_all, threading.local()

    def get(self) -> Any:
        """This thread's handles, opened on its first call (`open_all(stack)`)."""
        handles = getattr(self._local, "handles", None)
        if handles is None:
            self._local.stack = ExitStack()
            handles = self._local.handles = self._open_all(self._local.stack)
        return handles

    def close_own(self) -> None:
        stack = getattr(self._local, "stack", None)
        if stack is not None:
            stack.close()
        self._local.stack = self._local.handles = None

    def close_in(self, pool, threads: int) -> None:
        """Have every one of the pool's `threads` threads close its own handles (a barrier puts one
        closing task on each thread)."""
        barrier = threading.Barrier(threads)

        def close_mine() -> None:
            barrier.wait(timeout=120)
            self.close_own()

        for future in [pool.submit(close_mine) for _ in range(threads)]:
            future.result()


def build_overviews(path: str | os.PathLike, factors: list[int], resampling: str) -> None:
    """Overviews of every band of the raster at `path` ("mode", "average", ...), on GDAL's threads
    (`threads.in_force`). Through GDAL's own bindings where they are installed: they let go of
    the GIL, so several files build at once on several threads (rasterio's call holds it)."""
    from . import threads
    from .files import unwritten

    count = str(threads.in_force())
    try:
        from osgeo import gdal
    except ImportError:
        with rasterio.open(path, "r+") as ds, rasterio.Env(GDAL_NUM_THREADS=count):
            ds.build_overviews(factors, Resampling[resampling.lower()])
        return
    before = gdal.GetThreadLocalConfigOption("GDAL_NUM_THREADS", None)
    gdal.SetThreadLocalConfigOption("GDAL_NUM_THREADS", count)
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # GDAL's message goes into the one error below
    try:
        try:
            ds = gdal.Open(os.fspath(path), gdal.GA_Update)
            failed = ds is None or ds.BuildOverviews(resampling.upper(), factors) != 0
            ds = None  # closed: the overviews are on disk
        except RuntimeError as exc:  # where the bindings raise (gdal.UseExceptions, QGIS, GDAL 4)
            raise unwritten(path, str(exc).strip()) from None
        if failed:
            raise unwritten(path, gdal.GetLastErrorMsg())
    finally:
        gdal.PopErrorHandler()
        gdal.SetThreadLocalConfigOption("GDAL_NUM_THREADS", before)
