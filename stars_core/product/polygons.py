"""A classified map as polygons: one feature per patch with its class and area (GDAL's polygonize).

GDAL's polygonize traces patch outlines along pixel edges (an 8-connected patch that meets itself at
a pixel corner is made valid as a multipolygon split there), so neighbours share their boundaries
exactly (no gaps, no overlaps) and holes are kept as interior rings. A minimum polygon area is met
by cleaning the map to that unit first (GDAL's sieve, `product.mmu`) rather than by dropping small
polygons, which would leave gaps. The GeoPackage carries a default QGIS style: a categorized
renderer in the class colours, so the layer opens as the map does.

Simplification (optional) keeps the polygons a coverage: the boundaries are cut into arcs between
the points where three or more patches (or a patch and no-data) meet, every arc is simplified once
for both its sides, with its end points fixed and without crossing any other arc (GEOS's
topology-preserving simplifier over all arcs together), and the faces are rebuilt from the arcs.
Neighbours therefore still share their boundaries exactly. It holds the map's boundaries in memory
(unlike the rest, which streams: 1.8 GB at 16k x 16k in bench/RESULTS.md); GEOS's coverage
simplifier would do this job, but it needs GEOS 3.12 and shapely 2.1, whose bundled GEOS crashes
next to the older one QGIS loads (tried: a segfault with Debian's libgeos_c preloaded).
"""
from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

from ..classes import ClassTable
from ..files import atomic_path, check_outputs
from ..raster import centre_latitude, metres_per_pixel, open_raster, pixel_size
from ..errors import Cancelled, InputError
from .mmu import clean_map

LAYER = "landcover"


def polygonize(map_path: str | os.PathLike, out: str | os.PathLike, min_area: str | None = None,
               connectivity: int = 8, class_table=None, cancel: Callable[[], bool] | None = None,
               progress: Callable[[float], None] | None = None, log: Callable[[str], None] = print,
               simplify: str | None = None) -> dict:
    """Write the patches of `map_path` as polygons to the GeoPackage `out` (layer `landcover`: value,
    class, area_m2, area_ha), optionally simplified to a tolerance (`simplify`: '1px', '15m'), shared
    boundaries kept. Returns {polygons, area_m2, simplified (the tolerance in map units, or 0)}."""
    from osgeo import gdal, ogr, osr

    from ..classmap import map_classes

    check_outputs({"classified map": map_path}, {"polygon GeoPackage": out})
    if connectivity not in (4, 8):
        raise InputError(f"connectivity must be 4 or 8, got {connectivity}")
    with open_raster(map_path, "classified map") as ds:
        classes = map_classes(ds, class_table)
        tolerance = simplify_tolerance(simplify, ds) if simplify is not None else 0.0
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
            try:
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
                # quiet: GDAL warns of every polygon written to the multipolygon layer and every
                # self-touching ring it is asked to validate; both are expected and made valid below
                gdal.PushErrorHandler("CPLQuietErrorHandler")
                try:
                    layer.StartTransaction()
                    if gdal.Polygonize(band, mask, layer, 0, options, callback=report) != 0:
                        layer.RollbackTransaction()
                        if cancel is not None and cancel():
                            raise Cancelled("polygonizing cancelled; no output was written")
                        raise InputError(f"GDAL's polygonize failed on {os.fspath(map_path)!r}: "
                                         f"{gdal.GetLastErrorMsg()}")
                    layer.CommitTransaction()
                    count, total = _attributes(layer, classes, srs, cancel)
                    if tolerance > 0:
                        if progress is not None:
                            progress(0.85)
                        tolerance = _simplify(layer, tolerance, cancel, log)
                        count, total = _attributes(layer, classes, srs, cancel)
                finally:
                    gdal.PopErrorHandler()
                _default_style(target, classes)
            except BaseException:  # cancelled or failed: the file is discarded, so what GDAL cannot flush
                layer = None       # into it (after a rolled-back transaction) is not worth a message
                gdal.PushErrorHandler("CPLQuietErrorHandler")
                try:
                    _close(target)
                finally:
                    gdal.PopErrorHandler()
                raise
            layer = None  # before its data source
            _close(target)
        band = mask = src = None
    log(f"{count:,} polygons, {total / 10_000:,.1f} ha")
    return {"polygons": count, "area_m2": total, "simplified": tolerance}


def _close(ds) -> None:
    """Close a GDAL/OGR data source now, not when the last Python reference (perhaps in a traceback)
    goes: Close on GDAL 3.8 and later, Destroy before."""
    for name in ("Close", "Destroy"):
        if hasattr(ds, name):
            getattr(ds, name)()
            return


def parse_tolerance(text: str) -> tuple[float, str]:
    """'1.5px' -> (1.5, 'px'), '15m' -> (15.0, 'm'); anything else is refused in one line."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(px|m)\s*", str(text).lower())
    if m is None or float(m.group(1)) <= 0:
        raise InputError(f"simplification tolerance {text!r}: give a positive distance with its unit, in pixels "
                         f"(1px) or metres (15m)")
    return float(m.group(1)), m.group(2)


def simplify_tolerance(text: str, ds) -> float:
    """A simplification tolerance ('1.5px', '15m') in the map's units."""
    value, unit = parse_tolerance(text)
    side = math.sqrt(abs(pixel_size(ds)[0] * pixel_size(ds)[1]))  # a pixel side in map units
    if unit == "px":
        return value * side
    if ds.crs is None:
        raise InputError("the map has no CRS, so a tolerance in metres is unknown: give it in pixels (1px)")
    latitude = centre_latitude(ds) if ds.crs.is_geographic else 0.0
    return value * side / metres_per_pixel(ds.crs, pixel_size(ds), latitude)


def _simplify(layer, tolerance: float, cancel, log, attempts: int = 4) -> float:
    """Simplify the polygons of `layer` in place as a coverage (see the module's docstring).

    Every arc separates two faces. A part too thin to hold a point farther than the tolerance from
    its boundary keeps its arcs as traced (they could collapse onto each other: the topology-
    preserving simplifier only stops arcs crossing). Every other part is represented by such a deep
    point, which its rebuilt face must hold alone; a part whose face is lost or shared keeps its arcs
    as traced at the next attempt. Returns the tolerance (0: left as traced after `attempts`)."""
    import numpy as np
    from shapely import wkb
    from shapely.geometry import LineString, MultiLineString, Point
    from shapely.ops import polygonize

    def geometries():
        layer.ResetReading()
        for f in layer:
            yield f.GetFID(), wkb.loads(bytes(f.GetGeometryRef().ExportToWkb()))

    def part(i: int):
        fid, k = parts[i]
        feature = layer.GetFeature(fid)  # held: its geometry is freed with it
        return wkb.loads(bytes(feature.GetGeometryRef().ExportToWkb())).geoms[k]

    rings, features = [], 0
    for _fid, g in geometries():  # the polygons themselves are read again when needed
        features += 1
        rings.extend(np.asarray(ring.coords) for part in g.geoms for ring in (part.exterior, *part.interiors))
    arcs = _all_arcs(rings)
    del rings
    first = [arc.coords[:2] for arc in arcs]  # a point inside each arc's first edge: on its two faces only
    probes = np.array([((a[0] + b[0]) / 2, (a[1] + b[1]) / 2) for a, b in first])
    del first
    traced = np.zeros(len(arcs), bool)  # arcs kept as traced
    eps = tolerance * 1e-6

    def keep_traced(polygon) -> None:
        ring = polygon.boundary
        for i in _in_box(probes, polygon.bounds):
            if not traced[i] and ring.distance(Point(probes[i])) < eps:
                traced[i] = True

    parts, points = [], []  # (feature id, part number), and a point inside each part
    for fid, g in geometries():
        for k, polygon in enumerate(g.geoms):
            point = polygon.representative_point()
            if polygon.boundary.distance(point) <= tolerance:
                inner = polygon.buffer(-tolerance)
                if inner.is_empty:
                    keep_traced(polygon)  # thin: its face stays as traced and holds this point
                else:
                    point = inner.representative_point()
            parts.append((fid, k))
            points.append(point)
    for _attempt in range(attempts):
        if cancel is not None and cancel():
            raise Cancelled("polygonizing cancelled; no output was written")
        lines = []
        for arc, fixed in zip(arcs, traced):
            if fixed:  # edge by edge: nothing to simplify, still an obstacle to the others
                c = arc.coords
                lines.extend(LineString(c[k:k + 2]) for k in range(len(c) - 1))
            else:
                lines.append(arc)
        simple = MultiLineString(lines).simplify(tolerance, preserve_topology=True)
        owners, bad = _owners(list(polygonize(simple.geoms)), parts, points)
        if not bad and len(owners) == features:
            break
        for i in bad:
            keep_traced(part(i))
    else:
        log(f"simplification left out: the arcs could not be simplified without changing the map's topology "
            f"at a tolerance of {tolerance:g} map units")
        return 0.0
    _write_faces(layer, owners)
    return tolerance


def _all_arcs(rings: list) -> list:
    """The arcs between nodes of the polygons' rings, as open LineStrings."""
    import numpy as np
    from shapely.geometry import LineString, MultiLineString
    from shapely.ops import linemerge, unary_union

    arcs = _arcs(rings)
    if arcs is None:  # not traced along pixel edges (a map with rotated pixels): GEOS nodes them
        arcs = linemerge(unary_union([LineString(r) for r in rings]))
        arcs = [np.asarray(a.coords) for a in (arcs.geoms if isinstance(arcs, MultiLineString) else [arcs])]
    return [LineString(c) for arc in arcs for c in _open(arc)]


def _write_faces(layer, owners: dict) -> None:
    """Each feature's geometry replaced by its rebuilt faces."""
    from osgeo import ogr
    from shapely.geometry import MultiPolygon

    layer.StartTransaction()
    for fid, faces in owners.items():
        f = layer.GetFeature(fid)
        f.SetGeometry(ogr.CreateGeometryFromWkb(MultiPolygon(faces).wkb))
        layer.SetFeature(f)
    layer.CommitTransaction()


def _in_box(xy, bounds):
    import numpy as np

    x0, y0, x1, y1 = bounds
    return np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))


def _arcs(rings: list) -> list | None:
    """The boundaries of a polygon coverage traced along pixel edges, as arcs: chains of edges
    between nodes (vertices where other than two edges meet), each shared edge once. GDAL's
    polygonize may write a shared edge as one segment on one side and as several on the other, so
    every segment is first split at the vertices lying on it (all segments are horizontal or
    vertical: a sort per row and column finds them; GEOS's union of the linework does the same
    with 2.4 times the peak memory at 16k x 16k). Returns (n, 2) coordinate arrays, or None if a
    segment is neither horizontal nor vertical."""
    import numpy as np

    if not rings:
        return []
    points = np.concatenate(rings)
    ux, ix = np.unique(points[:, 0], return_inverse=True)
    uy, iy = np.unique(points[:, 1], return_inverse=True)
    ix, iy = ix.ravel().astype(np.int64), iy.ravel().astype(np.int64)
    starts_ring = np.ones(len(points), bool)
    starts_ring[np.cumsum([len(r) for r in rings]) - 1] = False  # a ring's closing vertex starts no edge
    first = np.flatnonzero(starts_ring[:-1])
    x0, y0, x1, y1 = ix[first], iy[first], ix[first + 1], iy[first + 1]
    if np.any((x0 != x1) & (y0 != y1)):
        return None
    grid_v = np.unique(ix * len(uy) + iy)  # the distinct vertices, sorted by column then row
    grid_h = np.unique(iy * len(ux) + ix)  # ... by row then column
    vertical = x0 == x1
    ids = []  # edges between consecutive vertices of each segment, as (column, row) vertex keys
    for upright, keys, width in ((True, grid_v, len(uy)), (False, grid_h, len(ux))):
        sel = vertical if upright else ~vertical
        if upright:
            line, a, b = x0[sel], np.minimum(y0, y1)[sel], np.maximum(y0, y1)[sel]
        else:
            line, a, b = y0[sel], np.minimum(x0, x1)[sel], np.maximum(x0, x1)[sel]
        lo = np.searchsorted(keys, line * width + a)
        counts = np.searchsorted(keys, line * width + b) - lo  # the segment's far end is keys[lo + counts]
        at = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        p, q = keys[at], keys[at + 1]
        if not upright:
            p, q = p % width * len(uy) + p // width, q % width * len(uy) + q // width
        ids.append((p, q))
    a = np.concatenate([i[0] for i in ids])
    b = np.concatenate([i[1] for i in ids])
    vertices, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    a, b = inverse[:len(a)], inverse[len(a):]
    n = len(vertices)
    xy = np.stack([ux[vertices // len(uy)], uy[vertices % len(uy)]], axis=1)
    keys = np.unique(np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b))
    edges = np.stack([keys // n, keys % n], axis=1)
    degree = np.bincount(edges.ravel(), minlength=n)
    ends_of = np.concatenate([edges[:, 0], edges[:, 1]])
    order = np.argsort(ends_of, kind="stable")
    starts = np.searchsorted(ends_of[order], np.arange(n + 1)).tolist()
    incident = (order % len(edges)).tolist()
    other = np.concatenate([edges[:, 1], edges[:, 0]])[order].tolist()
    deg, used, arcs = degree.tolist(), [False] * len(edges), []

    def walk(v: int, k: int) -> None:  # from vertex v along its k-th incident edge to the next node
        path = [v]
        while True:
            used[incident[k]] = True
            v = other[k]
            path.append(v)
            if deg[v] != 2:
                break
            k = next((j for j in range(starts[v], starts[v + 1]) if not used[incident[j]]), None)
            if k is None:  # back at the start of a closed ring
                break
        arcs.append(xy[path])

    for v in np.flatnonzero(degree != 2).tolist():
        for k in range(starts[v], starts[v + 1]):
            if not used[incident[k]]:
                walk(v, k)
    for e in range(len(edges)):  # rings meeting nothing else: closed arcs
        if not used[e]:
            v = int(edges[e, 0])
            walk(v, next(k for k in range(starts[v], starts[v + 1]) if incident[k] == e))
    return arcs


def _open(coords):
    """A closed arc (a ring that meets nothing else) cut into three open ones, so that simplifying it,
    which keeps every arc's end points, keeps at least a triangle."""
    closed = len(coords) >= 4 and (coords[0] == coords[-1]).all()
    if not closed:
        return [coords]
    a, b = len(coords) // 3, 2 * len(coords) // 3
    return [coords[:a + 1], coords[a:b + 1], coords[b:]]


def _owners(faces, parts: list, points: list) -> tuple[dict[int, list], set[int]]:
    """The rebuilt faces of each traced polygon (feature id -> faces), and the parts whose face was
    lost or holds another part's point too. Faces holding no part's point are no-data."""
    import numpy as np
    from shapely.prepared import prep

    xy = np.array([(p.x, p.y) for p in points]).reshape(-1, 2)
    found = np.zeros(len(points), bool)
    owners: dict[int, list] = {}
    bad: set[int] = set()
    for face in faces:
        near = _in_box(xy, face.bounds)
        if len(near) > 1:
            inside = prep(face)
            near = [i for i in near if inside.contains(points[i])]
        else:
            near = [i for i in near if face.contains(points[i])]
        if len(near) > 1:
            bad.update(near)
        elif near:
            owners.setdefault(parts[near[0]][0], []).append(face)
        found[near] = True
    bad.update(np.flatnonzero(~found).tolist())
    return owners, bad


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
