"""A classified map as polygons: one feature per patch with its class and area (GDAL's polygonize).

GDAL's polygonize traces patch outlines along pixel edges (an 8-connected patch that meets itself at
a pixel corner is made valid as a multipolygon split there), so neighbours share their boundaries
exactly (no gaps, no overlaps) and holes are kept as interior rings. A minimum polygon area is met
by cleaning the map to that unit first (GDAL's sieve, `product.mmu`) rather than by dropping small
polygons, which would leave gaps. The GeoPackage carries a default QGIS style: a categorized
renderer in the class colours, so the layer opens as the map does.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from ..classes import ClassTable
from ..files import atomic_path, check_outputs
from ..raster import open_raster
from ..runtime import Cancelled, InputError
from .mmu import clean_map

LAYER = "landcover"


def polygonize(map_path: str | os.PathLike, out: str | os.PathLike, min_area: str | None = None,
               connectivity: int = 8, class_table=None, cancel: Callable[[], bool] | None = None,
               progress: Callable[[float], None] | None = None, log: Callable[[str], None] = print) -> dict:
    """Write the patches of `map_path` as polygons to the GeoPackage `out` (layer `landcover`: value,
    class, area_m2, area_ha). Returns {polygons, area_m2}."""
    from osgeo import gdal, ogr, osr

    from ..accuracy.sample import map_classes

    check_outputs({"classified map": map_path}, {"polygon GeoPackage": out})
    if connectivity not in (4, 8):
        raise InputError(f"connectivity must be 4 or 8, got {connectivity}")
    with open_raster(map_path, "classified map") as ds:
        classes = map_classes(ds, class_table)
    with tempfile.TemporaryDirectory(dir=Path(out).resolve().parent, prefix=".stars-polygons-") as scratch:
        source = os.fspath(map_path)
        if min_area is not None:
            source = str(Path(scratch) / "clean.tif")
            clean_map(map_path, source, min_area, connectivity, cancel=cancel, log=log)
        src = gdal.Open(source)
        band = src.GetRasterBand(1)
        mask = band.GetMaskBand() if band.GetNoDataValue() is not None else None
        srs = src.GetSpatialRef()
        with atomic_path(out) as tmp:
            target = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp))
            layer = target.CreateLayer(LAYER, srs, ogr.wkbMultiPolygon)
            for name, kind in (("value", ogr.OFTInteger), ("class", ogr.OFTString), ("area_m2", ogr.OFTReal),
                               ("area_ha", ogr.OFTReal)):
                layer.CreateField(ogr.FieldDefn(name, kind))

            def report(done, _message, _data):
                if cancel is not None and cancel():
                    return 0
                if progress is not None:
                    progress(0.8 * done)
                return 1

            options = ["8CONNECTED=8"] if connectivity == 8 else []
            layer.StartTransaction()
            if gdal.Polygonize(band, mask, layer, 0, options, callback=report) != 0:
                layer.RollbackTransaction()
                if cancel is not None and cancel():
                    raise Cancelled("polygonizing cancelled; no output was written")
                raise InputError(f"GDAL's polygonize failed on {os.fspath(map_path)!r}: {gdal.GetLastErrorMsg()}")
            layer.CommitTransaction()
            count, total = _attributes(layer, classes, srs, cancel)
            _default_style(target, classes)
            layer = None  # before its data source
            target = None
        band = mask = src = None
    log(f"{count:,} polygons, {total / 10_000:,.1f} ha")
    return {"polygons": count, "area_m2": total}


def _attributes(layer, classes: ClassTable, srs, cancel) -> tuple[int, float]:
    """Valid multipolygons, class names and areas (m2; on a geographic CRS, on an equal-area
    projection)."""
    from osgeo import ogr, osr

    names = dict(zip(classes.values, classes.names))
    to_metres, factor = None, 1.0
    if srs is not None and srs.IsGeographic():
        equal_area = osr.SpatialReference()
        equal_area.ImportFromEPSG(6933)  # WGS 84 / NSIDC EASE-Grid 2.0 Global: equal area
        for s in (srs, equal_area):
            s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        to_metres = osr.CoordinateTransformation(srs, equal_area)
    elif srs is not None:
        factor = srs.GetLinearUnits() or 1.0
    count, total = 0, 0.0
    layer.StartTransaction()
    layer.ResetReading()
    for f in layer:
        if cancel is not None and cancel() and count % 1000 == 0:
            raise Cancelled("polygonizing cancelled; no output was written")
        g = f.GetGeometryRef()
        if not g.IsValid():  # 8-connected patches meet themselves at pixel corners: split there
            g = g.MakeValid()
        g = ogr.ForceToMultiPolygon(g)
        f.SetGeometry(g)
        if to_metres is not None:
            g = g.Clone()
            g.Transform(to_metres)
        area = g.GetArea() * factor * factor
        f.SetField("class", names.get(f.GetField("value"), str(f.GetField("value"))))
        f.SetField("area_m2", area)
        f.SetField("area_ha", area / 10_000)
        layer.SetFeature(f)
        count += 1
        total += area
    layer.CommitTransaction()
    return count, total


def _default_style(target, classes: ClassTable) -> None:
    from ..style import categorized_qml, gpkg_default_style

    gpkg_default_style(target, LAYER, categorized_qml(classes, "value", "fill"), "land-cover polygons in the class colours")
