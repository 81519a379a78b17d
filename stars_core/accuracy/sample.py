"""A stratified random sample of pixel-centre points from a classified map, and reading it back.

The strata are the map classes (no-data excluded). Both passes stream the map in strips of rows, so
memory stays flat at any map size: the first counts each class's pixels (and their area, row by row:
on a geographic CRS a pixel's area shrinks with latitude); then each stratum's points are drawn as
ranks among its pixels in row-major order (numpy's seeded generator, without replacement), and the
second pass turns ranks into pixels. Every pixel of a stratum is equally likely: a stratified random
sample in Olofsson et al.'s (2014) sense.

The sample GeoPackage holds what the estimate needs and nothing else is read later:
    sample   points (the map's CRS) with id, map_value, map_name and an empty `reference`
             (the interpreter's class value for the point)
    strata   value, name, pixels, area_m2 and points of every map class
and the design (map, grid, seed, allocation, sample size rule) as JSON metadata of `sample`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from rasterio.windows import Window

from ..classes import ClassTable
from ..classmap import CLASS_TABLE_WHERE, change_record, map_classes
from ..files import atomic_path, check_outputs
from ..raster import open_raster, pixel_area, row_areas
from ..errors import Cancelled, InputError
from .design import allocate, sample_size

STRIP = 256  # rows per read


@dataclass
class Strata:
    """The map classes of a classified raster and their mapped pixel counts and areas."""

    values: list[int]
    names: list[str]
    pixels: list[int]
    area_m2: list[float]
    colors: list[str] | None = None

    def table(self) -> ClassTable:
        """The map classes as a class table, in the strata's order."""
        from ..classes import palette

        colors = self.colors if self.colors is not None else palette(len(self.values))
        return ClassTable(tuple(self.values), tuple(self.names), tuple(colors))

    @property
    def weights(self) -> np.ndarray:
        area = np.asarray(self.area_m2, np.float64)
        return area / area.sum()


@dataclass
class SampleResult:
    path: Path
    strata: Strata
    points: list[int]  # per stratum
    total: int
    rule: str  # how the size came about


def _strips(ds, cancel):
    for row in range(0, ds.height, STRIP):
        if cancel is not None and cancel():
            raise Cancelled("cancelled; nothing was written")
        h = min(STRIP, ds.height - row)
        yield row, ds.read(1, window=Window(0, row, ds.width, h))


def count_strata(map_path: str | os.PathLike, class_table=None, cancel: Callable[[], bool] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Strata:
    """Pixels and area of every class of the map (one streamed pass). Values outside the class
    table, other than no-data, are an error naming them."""
    with open_raster(map_path, "classified map") as ds:
        classes = map_classes(ds, class_table)
        nodata = ds.nodata
        lut = classes.value_index()
        pixels = np.zeros(len(classes), np.int64)
        area = np.zeros(len(classes), np.float64)
        strange: set[int] = set()
        for row, data in _strips(ds, cancel):
            data = data.astype(np.int64)
            valid = np.ones(data.shape, bool) if nodata is None else data != int(nodata)
            idx = np.where(valid, lut[np.clip(data, 0, 65535)], -2)
            if (idx == -1).any():
                strange |= set(np.unique(data[idx == -1]).tolist()[:10])
            per_row = row_areas(ds, np.arange(row, row + data.shape[0]))
            for k in range(len(classes)):
                hit = idx == k
                pixels[k] += int(hit.sum())
                area[k] += float((hit.sum(axis=1) * per_row).sum())
            if progress is not None:
                progress(min(row + STRIP, ds.height), ds.height)
    if strange:
        raise InputError(f"{os.fspath(map_path)!r} holds values that are not in its class table: "
                         f"{sorted(strange)}; give the class table the map was made with: {CLASS_TABLE_WHERE}")
    if pixels.sum() == 0:
        raise InputError(f"{os.fspath(map_path)!r} has no classified pixel (all no-data): nothing to sample")
    return Strata(list(classes.values), list(classes.names), pixels.tolist(), area.tolist(), list(classes.colors))


def plan_size(strata: Strata, n: int | None = None, target_se: float = 0.01,
              expected_users: float | Mapping[str, float] = 0.8) -> tuple[int, str]:
    """The total sample size: given, or from a target standard error of overall accuracy and the
    expected user's accuracies (eq. 13). Returns (n, how it came about)."""
    if n is not None:
        if n < 1:
            raise InputError(f"the sample size must be at least 1, got {n}")
        return n, f"{n} points (given)"
    present = [i for i, p in enumerate(strata.pixels) if p > 0]
    if isinstance(expected_users, Mapping):
        unknown = sorted(set(expected_users) - set(strata.names))
        if unknown:
            raise InputError(f"expected user's accuracy for unknown classes {unknown}; the map's classes are "
                             f"{', '.join(strata.names)}")
        users = [float(expected_users.get(strata.names[i], 0.8)) for i in present]
    else:
        users = [float(expected_users)] * len(present)
    W = strata.weights[present]
    total = sample_size(W, users, target_se, population=float(sum(strata.pixels)))
    return total, (f"{total} points for a standard error of overall accuracy of {target_se:g} with expected user's "
                   f"accuracies {', '.join(f'{strata.names[i]} {u:g}' for i, u in zip(present, users))} "
                   f"(Olofsson et al. 2014, eq. 13)")


def draw_sample(map_path: str | os.PathLike, out: str | os.PathLike, *, class_table=None, n: int | None = None,
                target_se: float = 0.01, expected_users: float | Mapping[str, float] = 0.8,
                allocation: str = "proportional", minimum: int = 50, per_class: Mapping[str, int] | None = None,
                seed: int = 0, cancel: Callable[[], bool] | None = None,
                progress: Callable[[int, int], None] | None = None,
                log: Callable[[str], None] = print, replace_labelled: bool = False) -> SampleResult:
    """Draw a stratified random sample of pixel centres from `map_path` and write the sample
    GeoPackage `out` (see the module docstring). Sizes: `per_class` {class name: points}, else a
    total (`n`, or eq. 13 from `target_se` and `expected_users`) shared by `allocation`. An existing
    sample at `out` with labelled points is refused unless `replace_labelled`."""
    check_outputs({"classified map": map_path, "class table": class_table if not isinstance(class_table, ClassTable)
                   else None}, {"sample GeoPackage": out})
    if not replace_labelled:
        refuse_labelled(out)
    if minimum < 0:
        raise InputError(f"the minimum per class must be 0 or more, got {minimum}")
    strata = count_strata(map_path, class_table, cancel,
                          None if progress is None else (lambda d, t: progress(d, 2 * t)))
    if per_class is not None:
        unknown = sorted(set(per_class) - set(strata.names))
        if unknown:
            raise InputError(f"points asked for unknown classes {unknown}; the map's classes are "
                             f"{', '.join(strata.names)}")
        given = {strata.names.index(k): int(v) for k, v in per_class.items()}
        points = allocate(0, strata.pixels, given=given)
        total = sum(points)
        rule = f"{total} points: per class as given"
    else:
        total, rule = plan_size(strata, n, target_se, expected_users)
        points = allocate(total, strata.pixels, allocation, minimum)
        rule += f", allocated {allocation}" + (f" with at least {minimum} per class" if allocation == "proportional"
                                                else "")
    short = [f"{strata.names[i]} ({strata.pixels[i]} pixels)" for i, (c, p) in enumerate(zip(points, strata.pixels))
             if 0 < p < (per_class or {}).get(strata.names[i], minimum if allocation == "proportional" else 0)]
    if short:
        log(f"every pixel of {', '.join(short)} is in the sample: the class is smaller than its share")
    rng = np.random.default_rng(seed)
    ranks = [np.sort(rng.choice(p, size=c, replace=False)) if c else np.zeros(0, np.int64)
             for p, c in zip(strata.pixels, points)]
    with open_raster(map_path, "classified map") as ds:
        chosen = _locate(ds, strata, ranks, cancel, progress)
        change = change_record(ds)
        design = {"map": os.path.abspath(os.fspath(map_path)), "width": ds.width, "height": ds.height,
                  "transform": list(ds.transform)[:6], "crs": ds.crs.to_wkt() if ds.crs else None, "seed": seed,
                  "allocation": allocation if per_class is None else "per class", "minimum": minimum,
                  "rule": rule, "total": int(sum(points)), **({"change": change} if change else {})}
        _write_gpkg(out, ds, strata, points, chosen, design)
    drawn = int(sum(points))
    log(rule if drawn == total else f"{drawn} points drawn, not {total}: a class smaller than its share gives every "
        f"pixel it has ({rule})")
    return SampleResult(Path(out), strata, points, int(sum(points)), rule)


FROM_TO = ("reference_from", "reference_to")


def reference_fields(design: dict) -> tuple[str, ...]:
    """The sample's reference fields: from and to classes for a from-to map, else `reference`."""
    return FROM_TO if design.get("change") else ("reference",)


def labelled_points(path: str | os.PathLike) -> int:
    """How many points of an existing GeoPackage's `sample` layer carry a reference (0 if none, or
    if it is not a sample)."""
    from osgeo import ogr

    if not os.path.isfile(path):
        return 0
    ds = ogr.Open(os.fspath(path))
    layer = None if ds is None else ds.GetLayerByName("sample")
    fields = [f for f in ("reference", *FROM_TO) if layer is not None and layer.GetLayerDefn().GetFieldIndex(f) >= 0]
    if not fields:
        return 0
    layer.SetAttributeFilter(" OR ".join(f"{f} IS NOT NULL" for f in fields))
    return int(layer.GetFeatureCount())


def refuse_labelled(out: str | os.PathLike, flag: str = "--replace-labelled") -> None:
    """One line when `out` is a sample with labels: drawing again would lose them."""
    n = labelled_points(out)
    if n:
        raise InputError(f"{os.fspath(out)!r} is a sample with {n} labelled point(s); a new sample would replace "
                         f"them. Write it under another name (to add points to this one, see \"Adding points later\" "
                         f"in the documentation's 'From map to numbers'), or give {flag} to replace it")


def _locate(ds, strata: Strata, ranks: list[np.ndarray], cancel, progress) -> list[tuple[int, int, int]]:
    """(row, col, stratum) of the pixels at the given ranks of each stratum, in row-major order."""
    lut = strata.table().value_index()
    seen = np.zeros(len(strata.values), np.int64)
    nxt = [0] * len(strata.values)
    chosen = []
    nodata = ds.nodata
    for row, data in _strips(ds, cancel):
        data = data.astype(np.int64)
        idx = lut[np.clip(data, 0, 65535)]
        if nodata is not None:
            idx[data == int(nodata)] = -1
        for k, r in enumerate(ranks):
            if nxt[k] >= len(r):
                continue
            flat = np.flatnonzero(idx == k)
            upto = int(np.searchsorted(r, seen[k] + len(flat)))
            for rank in r[nxt[k]:upto]:
                pos = flat[int(rank - seen[k])]
                chosen.append((row + int(pos // ds.width), int(pos % ds.width), k))
            nxt[k] = upto
            seen[k] += len(flat)
        if progress is not None:
            progress(ds.height + min(row + STRIP, ds.height), 2 * ds.height)
    chosen.sort()
    return chosen


def _write_gpkg(out, ds, strata: Strata, points: list[int], chosen, design: dict) -> None:
    from osgeo import ogr, osr

    with atomic_path(out) as tmp:
        target = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp))
        srs = None
        if ds.crs is not None:
            srs = osr.SpatialReference()
            srs.ImportFromWkt(ds.crs.to_wkt())
            srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        layer = target.CreateLayer("sample", srs, ogr.wkbPoint)
        fields = reference_fields(design)
        for name, kind in (("id", ogr.OFTInteger), ("map_value", ogr.OFTInteger), ("map_name", ogr.OFTString),
                           *((f, ogr.OFTInteger) for f in fields)):
            layer.CreateField(ogr.FieldDefn(name, kind))
        layer.StartTransaction()
        for i, (row, col, k) in enumerate(chosen, start=1):
            x, y = ds.transform * (col + 0.5, row + 0.5)
            f = ogr.Feature(layer.GetLayerDefn())
            f.SetField("id", i)
            f.SetField("map_value", int(strata.values[k]))
            f.SetField("map_name", strata.names[k])
            for name in fields:
                f.SetFieldNull(name)
            point = ogr.Geometry(ogr.wkbPoint)
            point.AddPoint_2D(float(x), float(y))
            f.SetGeometry(point)
            layer.CreateFeature(f)
        layer.CommitTransaction()
        layer.SetMetadataItem("STARS_SAMPLE", json.dumps(design))
        table = target.CreateLayer("strata", None, ogr.wkbNone)
        for name, kind in (("value", ogr.OFTInteger), ("name", ogr.OFTString), ("color", ogr.OFTString),
                           ("pixels", ogr.OFTInteger64), ("area_m2", ogr.OFTReal), ("points", ogr.OFTInteger)):
            table.CreateField(ogr.FieldDefn(name, kind))
        for v, name, color, px, area, c in zip(strata.values, strata.names, strata.colors, strata.pixels,
                                               strata.area_m2, points):
            f = ogr.Feature(table.GetLayerDefn())
            f.SetField("value", int(v))
            f.SetField("name", name)
            f.SetField("color", color)
            f.SetField("pixels", int(px))
            f.SetField("area_m2", float(area))
            f.SetField("points", int(c))
            table.CreateFeature(f)
        _default_style(target, strata.table(), design)
        layer = table = None  # before their data source
        target = None


def _default_style(target, classes: ClassTable, design: dict) -> None:
    """QGIS's default style for the sample layer: value maps on the reference fields (the dates'
    classes for a from-to map), points in their map class's colour."""
    from ..style import gpkg_default_style, sample_qml

    change = design.get("change")
    dates = ClassTable.from_dict(change["classes"]) if change else None
    gpkg_default_style(target, "sample", sample_qml(classes, reference_fields(design), dates),
                       "STARS accuracy sample: pick the reference class by name")


@dataclass
class LabelledSample:
    """A sample GeoPackage read back: its points and the strata table it was drawn with. Points
    added by hand may lack `id` (their feature id is used, and listed in `added`) and `map_value`
    (None: the map's value at the point is used). A sample of a from-to map has `from_to` (the
    interpreted class at each date, class values of the dates' table, or None) instead of references."""

    ids: list[int]
    xy: np.ndarray  # (P, 2) point coordinates, in `crs_wkt`
    map_values: list[int | None]
    references: list[int | None]
    strata: Strata
    design: dict
    crs_wkt: str | None = None
    added: list[int] = field(default_factory=list)
    from_to: list[tuple[int | None, int | None]] | None = None


def read_sample(path: str | os.PathLike) -> LabelledSample:
    """The points and strata of a sample GeoPackage written by `draw_sample` (labelled or not).
    References may be class values or class names (a text field); anything else is one line naming
    the points and the fix."""
    from osgeo import ogr

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"sample {path!r} not found")
    ds = ogr.Open(path)
    if ds is None or ds.GetLayerByName("sample") is None or ds.GetLayerByName("strata") is None:
        raise InputError(f"{path!r} is not a sample written by `stars sample` (it needs the layers sample and "
                         f"strata)")
    layer = ds.GetLayerByName("sample")
    design = json.loads(layer.GetMetadataItem("STARS_SAMPLE") or "{}")
    defn = layer.GetLayerDefn()
    fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    wanted = reference_fields(design)
    missing = [f for f in ("id", "map_value", *wanted) if f not in fields]
    if missing:
        raise InputError(f"{path!r}: the sample layer lacks the field(s) {', '.join(missing)}"
                         + (" (a sample of a from-to map records the class at each date)" if design.get("change")
                            else ""))
    strata = _strata_table(ds.GetLayerByName("strata"))
    named = ClassTable.from_dict(design["change"]["classes"]) if design.get("change") else strata.table()
    by_name = {str(n).strip().lower(): v for v, n in zip(named.values, named.names)}
    ids, xy, values, refs, added, bad = [], [], [], [], [], []
    for f in layer:
        g = f.GetGeometryRef()
        ident = None if f.IsFieldNull("id") or not f.IsFieldSet("id") else int(f.GetField("id"))
        if ident is None:  # a point added by hand: named by its feature id
            ident = int(f.GetFID())
            added.append(ident)
        ids.append(ident)
        xy.append((g.GetX(), g.GetY()) if g is not None and not g.IsEmpty() else (math.nan, math.nan))
        values.append(None if f.IsFieldNull("map_value") or not f.IsFieldSet("map_value")
                      else int(f.GetField("map_value")))
        got = tuple(_reference(f, name, by_name) for name in wanted)
        bad += [(ident, r) for r in got if r is not None and not isinstance(r, int)]
        refs.append(got)
    if bad:
        shown = ", ".join(f"{i} ({r!r})" for i, r in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise InputError(f"{path!r}: field {' or '.join(f'`{w}`' for w in wanted)} of points {shown} is neither a class "
                         f"value nor a class name; use one of {', '.join(f'{v} {n}' for v, n in zip(named.values, named.names))}")
    srs = layer.GetSpatialRef()
    from_to = [tuple(r) for r in refs] if len(wanted) == 2 else None
    return LabelledSample(ids, np.asarray(xy, np.float64).reshape(-1, 2), values,
                          [None] * len(refs) if from_to else [r[0] for r in refs], strata, design,
                          srs.ExportToWkt() if srs is not None else None, added, from_to)


def _strata_table(table) -> Strata:
    rows = [(int(f.GetField("value")), f.GetField("name"), int(f.GetField("pixels")), float(f.GetField("area_m2")),
             f.GetField("color") or "#808080") for f in table]
    return Strata([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                  [r[4] for r in rows])


def _reference(f, name: str, by_name: dict):
    """A point's reference in field `name`: a class value, None (unlabelled), or what was typed instead."""
    ref = None if f.IsFieldNull(name) or not f.IsFieldSet(name) else f.GetField(name)
    if isinstance(ref, str):
        text = ref.strip()
        ref = None if not text else by_name.get(text.lower(), int(text) if text.lstrip("-").isdigit() else text)
    if isinstance(ref, float):
        ref = int(ref) if ref.is_integer() else ref
    return ref
