"""What a class map is on disk, in one place: a single-band integer GeoTIFF whose pixel values are
the class values of a class table, carrying that table so every tool reads its classes without help.

Written by `style_class_map` (segment, series, temporal filter, change, mode composites):
- band 1's `STARS_CLASSES` tag: the class table as JSON (values, names, colours), what the toolbox
  reads back (`stored_classes`, `map_classes`);
- the GeoTIFF colour table and GDAL category names (GDAL tools, ArcGIS), `CLASS_<value>` tags;
- overviews by the mode of the classes (the colours stay classes when zoomed out).
A from-to map (`stars change`) is a class map whose classes are transitions, with a dataset tag
`STARS_CHANGE` (JSON: what it was made from; `change_record`). A map made elsewhere is read from its
`CLASS_<value>` tags and colour table, or from a class table the user gives.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .classes import ClassTable, rgb
from .errors import InputError

CLASSES_TAG = "STARS_CLASSES"  # band 1: the class table as JSON
CHANGE_TAG = "STARS_CHANGE"  # the dataset: a from-to map's record of what it was made from
CLASS_TABLE_WHERE = "--class-table on the command line, the 'Class table' parameter in QGIS"
OVERVIEW_SIDE = 128  # overviews are built until the longer side is below this


def stored_classes(ds) -> ClassTable | None:
    """The class table a class map carries (band 1's STARS_CLASSES tag), if any; `ds` is an open
    rasterio dataset."""
    tag = ds.tags(1).get(CLASSES_TAG)
    return ClassTable.from_dict(json.loads(tag)) if tag else None


def is_class_map(ds) -> bool:
    """A finished class map of the toolbox: one band carrying its class table (written last)."""
    return ds.count == 1 and CLASSES_TAG in ds.tags(1)


def map_classes(ds, class_table: str | os.PathLike | ClassTable | None = None) -> ClassTable:
    """The class table of a classified raster: given, else the one it carries, else its GDAL
    category names (`CLASS_<value>` tags) and colour table."""
    if isinstance(class_table, ClassTable):
        return class_table
    if class_table is not None:
        return ClassTable.from_file(class_table)
    table = stored_classes(ds)
    if table is not None:
        return table
    tags = {int(k[6:]): v for k, v in ds.tags(1).items() if k.startswith("CLASS_") and k[6:].isdigit()}
    if tags:
        try:
            colors = ds.colormap(1)
        except ValueError:
            colors = {}
        return ClassTable(tuple(sorted(tags)), tuple(tags[v] for v in sorted(tags)),
                          tuple("#%02x%02x%02x" % tuple(colors.get(v, (128, 128, 128))[:3]) for v in sorted(tags)))
    raise InputError(f"{ds.name!r} holds no class table (it was not made by `stars segment`); give one (a CSV of "
                     f"value,name,color): {CLASS_TABLE_WHERE}")


def change_record(ds) -> dict | None:
    """What a from-to map (`stars change`) was made from (its STARS_CHANGE tag), or None for a map of
    one date."""
    tag = ds.tags().get(CHANGE_TAG)
    return json.loads(tag) if tag else None


def overview_factors(width: int, height: int) -> list[int]:
    """Overview levels 2, 4, ... until the raster's longer side is below OVERVIEW_SIDE."""
    factors, f = [], 2
    while max(width, height) / f >= OVERVIEW_SIDE:
        factors.append(f)
        f *= 2
    return factors


def style_class_map(path: str | os.PathLike, classes: ClassTable, **tags: str) -> None:
    """A class map's colour table, stored class table, GDAL category names and mode overviews, so
    QGIS, GDAL and the toolbox's products read its classes; `tags` are added to the dataset too. The
    colour table only on 8-bit maps: a 16-bit GeoTIFF's has 65,536 entries, all of them in QGIS's
    legend (its .qml styles it instead). A file GDAL could not write whole (a full disk) is said in one
    line (`files.unwritten`)."""
    from .raster import build_overviews

    with _reopen(path) as ds:
        if ds.dtypes[0] == "uint8":
            ds.write_colormap(1, {v: (*rgb(c), 255) for v, c in zip(classes.values, classes.colors)})
        ds.update_tags(1, **{CLASSES_TAG: json.dumps(classes.to_dict())})
        ds.update_tags(**{f"CLASS_{v}": n for v, n in zip(classes.values, classes.names)}, **tags)
        factors = overview_factors(ds.width, ds.height)
    build_overviews(path, factors, "mode")  # after the colour table is on disk, which they keep
    with _reopen(path) as ds:  # the overviews were written whole too
        ds.update_tags(ns="rio_overview", resampling="mode")
    _set_category_names(Path(path), classes)


def _reopen(path):
    """A raster just written, opened for update; one GDAL cannot reopen was not written whole."""
    import rasterio

    from .files import unwritten

    try:
        return rasterio.open(path, "r+")
    except Exception as exc:  # TypeError (not recognised), CPLE_* or RasterioIOError, as GDAL reports it
        raise unwritten(path, exc) from None


def _set_category_names(path: Path, classes: ClassTable) -> None:
    """GDAL category names (value -> class name), read by GDAL tools and ArcGIS (.aux.xml)."""
    try:
        from osgeo import gdal
    except ImportError:  # the names also live in the file's metadata and in the .qml
        return
    names = [""] * (max(classes.values) + 1)
    for v, n in zip(classes.values, classes.names):
        names[v] = n
    ds = gdal.Open(os.fspath(path), gdal.GA_Update)
    ds.GetRasterBand(1).SetCategoryNames(names)
    ds = None
