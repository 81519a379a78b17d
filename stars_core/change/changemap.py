"""The from-to map of two class maps of one area (dates A and B), its transition matrix of mapped
areas, a minimum mapping unit on change patches, and change polygons.

Streaming, in strips of rows, so memory stays flat at any map size:
1. both maps are read on A's grid (B warped onto it with nearest-neighbour resampling when its grid
   differs, and said so); a pixel that is no data in either is no data; the working codes
   (`transitions`: 1 unchanged, 2 + i K + j for i -> j) go to a temporary GeoTIFF;
2. with a minimum mapping unit, GDAL's sieve merges every patch smaller than it into its largest
   neighbour; all unchanged pixels share one code, so a small change patch inside stable land
   becomes stable (the class it had at date A), which is what a change MMU means;
3. the codes become the output's values (unchanged keep their class or share "no change";
   transitions, or their groups) and the transition matrix is counted, in mapped hectares.
The maps must share a class table (the same values and names): the from-to map of maps of different
legends would not mean anything, and a map holding values its table does not list is refused (they
would become no data unseen). A from-to map is refused as an input (its tag says what it is). The tag
records what each date's map was (`band_record`: size, modification time, a hash of its class band),
so `stars assess` can refuse a date's map changed since.
"""
from __future__ import annotations

import csv
import html
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..classes import ClassTable
from ..classmap import CHANGE_TAG, CLASS_TABLE_WHERE, map_classes, style_class_map
from ..errors import Cancelled, InputError
from ..files import atomic_outputs, check_outputs
from ..raster import aligned, open_raster, pixel_area
from .transitions import NODATA, Transitions, read_groups

STRIP = 512  # rows per read


@dataclass
class ChangeResult:
    """What `change_map` wrote and counted."""

    path: Path
    classes: ClassTable  # the map classes (rows and columns of `matrix_ha`)
    legend: ClassTable  # the from-to map's classes
    matrix_ha: np.ndarray  # (K, K) mapped hectares, rows: class at date A, columns: class at date B
    changed_ha: float
    total_ha: float
    notes: list[str]
    polygons: Path | None = None
    present: ClassTable | None = None  # the legend entries the map holds (its .qml and QGIS list these)

    def rows(self) -> list[dict]:
        """One row per transition with mapped area (the diagonal: unchanged)."""
        names = self.classes.names
        return [{"from": a, "to": b, "area_ha": float(self.matrix_ha[i, j])}
                for i, a in enumerate(names) for j, b in enumerate(names) if self.matrix_ha[i, j] > 0]


def map_classes_of(ds, class_table, role: str) -> ClassTable:
    """The class table of a date's map; a from-to map given as a date's map is refused."""
    if CHANGE_TAG in ds.tags():
        raise InputError(f"the {role} {ds.name!r} is a from-to map made by `stars change`; give the class maps of "
                         f"the two dates")
    return map_classes(ds, class_table)


def change_map(map_a: str | os.PathLike, map_b: str | os.PathLike, output: str | os.PathLike, *,
               unchanged: str = "keep", groups: str | os.PathLike | None = None, mmu: str | None = None,
               connectivity: int = 8, class_table=None, polygons: str | os.PathLike | None = None,
               matrix_csv: str | os.PathLike | None = None, html_report: str | os.PathLike | None = None,
               cancel: Callable[[], bool] | None = None, progress: Callable[[float], None] | None = None,
               log: Callable[[str], None] = print) -> ChangeResult:
    """Write the from-to map of `map_a` (date A) and `map_b` (date B) to `output` (see the module
    docstring); optionally change polygons (GeoPackage), the transition matrix as CSV, an HTML report."""
    qml = Path(output).with_suffix(".qml")
    check_outputs({"map of date A": map_a, "map of date B": map_b, "grouping table": groups,
                   "class table": class_table if not isinstance(class_table, ClassTable) else None},
                  {"change map": output, "style file beside it": qml, "change polygons": polygons,
                   "transition matrix CSV": matrix_csv, "HTML report": html_report})
    if connectivity not in (4, 8):
        raise InputError(f"connectivity must be 4 or 8, got {connectivity}")
    notes: list[str] = []
    with open_raster(map_a, "map of date A") as a, open_raster(map_b, "map of date B") as b:
        classes = _common_classes(a, b, class_table)
        legend = Transitions(classes, unchanged, read_groups(groups, classes) if groups else [])
        threshold = _mmu_pixels(mmu, a)
        records = {key: _date_record(ds, classes, role, cancel)
                   for key, ds, role in (("map_a", a, "map of date A"), ("map_b", b, "map of date B"))}
        with atomic_outputs(output, qml) as (out_t, qml_t):
            with tempfile.TemporaryDirectory(dir=out_t.parent, prefix=".stars-change-") as tmp:
                codes = Path(tmp) / "codes.tif"
                _write_codes(a, aligned(a, b, Resampling.nearest, "map of date A", "map of date B"), classes, codes,
                             notes, cancel, progress)
                if threshold > 1:
                    from ..product.mmu import sieve

                    sieve(codes, threshold, connectivity, cancel)
                    notes.append(f"change patches smaller than {mmu} ({threshold} pixels, {connectivity}-connected) "
                                 f"merged into their neighbours")
                matrix = _write_output(codes, a, classes, legend, out_t, cancel)
            present = legend.present(matrix)
            _style(out_t, qml_t, legend, present, map_a, map_b, mmu, records)
    with rasterio.open(output) as ds:
        area = pixel_area(ds) / 10_000 or 1.0  # hectares per pixel (a map without a CRS: pixels)
    result = ChangeResult(Path(output), classes, legend.table(), matrix * area,
                          float((matrix.sum() - np.trace(matrix)) * area), float(matrix.sum() * area), notes,
                          present=present)
    _products(result, legend, (output, qml, matrix_csv, html_report), polygons, cancel, log)
    for note in notes:
        log(note)
    return result


def _products(result: ChangeResult, legend: Transitions, written: tuple, polygons, cancel, log) -> None:
    """The matrix files and the polygons of a change map just written. A cancel or an error on the way
    removes what this run wrote (`written`: the map, its .qml, the matrix files), so that "no output
    was written" is true (the polygons are written whole or not at all)."""
    matrix_csv, html_report = written[2:]
    try:
        if matrix_csv is not None or html_report is not None:
            write_matrix(result, matrix_csv, html_report)
        if polygons is not None:
            result.polygons = change_polygons(result, legend, polygons, cancel, log)
    except BaseException:
        for path in written:
            for p in (path, None if path is None else f"{os.fspath(path)}.aux.xml"):
                if p is not None and os.path.exists(p):
                    os.remove(p)
        raise


def _common_classes(a, b, class_table) -> ClassTable:
    ca, cb = map_classes_of(a, class_table, "map of date A"), map_classes_of(b, class_table, "map of date B")
    if (ca.values, ca.names) != (cb.values, cb.names):
        raise InputError(f"the two maps have different class tables ({', '.join(f'{v} {n}' for v, n in zip(ca.values, ca.names))} "
                         f"against {', '.join(f'{v} {n}' for v, n in zip(cb.values, cb.names))}): a change between "
                         f"them would not mean anything; map both dates with one model, or give --class-table")
    return ca


def band_record(ds, each_strip: Callable[[np.ndarray], None] | None = None, cancel=None) -> dict:
    """What a date's map is: its file's size and modification time, and a BLAKE2b hash of its class
    band (the values, read in strips of rows: the same for any tiling, compression or data type)."""
    import hashlib
    from datetime import datetime, timezone

    digest = hashlib.blake2b(f"{ds.width}x{ds.height}".encode(), digest_size=20)
    for row in range(0, ds.height, STRIP):
        if cancel is not None and cancel():
            raise Cancelled("cancelled; no output was written")
        data = ds.read(1, window=Window(0, row, ds.width, min(STRIP, ds.height - row)))
        digest.update(data.astype("<i8").tobytes())
        if each_strip is not None:
            each_strip(data)
    stat = os.stat(ds.name)
    return {"size": stat.st_size, "mtime": datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(
        timespec="seconds"), "band_blake2b": digest.hexdigest()}


def _date_record(ds, classes: ClassTable, role: str, cancel) -> dict:
    """`band_record` of a date's map, refusing one that holds values its class table does not list
    (they would silently become no data in the change map), as `stars sample` refuses them."""

    lut, strange = classes.value_index(), set()

    def check(data: np.ndarray) -> None:
        data = data.astype(np.int64)
        bad = (data < 0) | (data >= len(lut)) | (lut[np.clip(data, 0, len(lut) - 1)] < 0)
        if ds.nodata is not None:
            bad &= data != int(ds.nodata)
        if bad.any() and len(strange) < 10:
            strange.update(np.unique(data[bad]).tolist()[:10])

    record = band_record(ds, check, cancel)
    if strange:
        raise InputError(f"the {role} {ds.name!r} holds values that are not in its class table: {sorted(strange)[:10]} "
                         f"(they would be lost as no data); give the class table the map was made with "
                         f"({CLASS_TABLE_WHERE}), or set those pixels to the map's no-data")
    return record


def _mmu_pixels(mmu, ds) -> int:
    if mmu is None:
        return 1
    from ..config import mmu_pixels
    from ..product.mmu import check_unit_fits

    threshold = mmu_pixels(mmu, pixel_area(ds))
    check_unit_fits(threshold, ds.width * ds.height, mmu, pixel_area(ds))
    return threshold


def _write_codes(a, b, classes: ClassTable, path: Path, notes: list[str], cancel, progress) -> None:
    """The working codes of every pixel (1 unchanged, 2 + i K + j for i -> j, 0 no data)."""
    if b is not None and hasattr(b, "src_dataset"):  # a WarpedVRT: B's grid differs
        notes.append("the map of date B was read on the grid of the map of date A (nearest neighbour)")
    lut, K = classes.value_index(), len(classes)
    profile = {"driver": "GTiff", "width": a.width, "height": a.height, "count": 1, "dtype": "uint16",
               "crs": a.crs, "transform": a.transform, "nodata": NODATA, "tiled": True, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as out:
        for row in range(0, a.height, STRIP):
            if cancel is not None and cancel():
                raise Cancelled("change map cancelled; no output was written")
            w = Window(0, row, a.width, min(STRIP, a.height - row))
            i, j = (_indices(ds, w, lut) for ds in (a, b))
            code = np.where(i == j, 1, 2 + i * K + j).astype(np.uint16)
            code[(i < 0) | (j < 0)] = NODATA
            out.write(code, 1, window=w)
            if progress is not None:
                progress(0.5 * (row + w.height) / a.height)


def _indices(ds, window: Window, lut: np.ndarray) -> np.ndarray:
    """Class indices of a strip (-1: no data, or a value outside the class table)."""
    data = ds.read(1, window=window).astype(np.int64)
    idx = lut[np.clip(data, 0, len(lut) - 1)]
    idx[(data < 0) | (data >= len(lut))] = -1
    if ds.nodata is not None:
        idx[data == int(ds.nodata)] = -1
    return idx


def _write_output(codes: Path, a, classes: ClassTable, legend: Transitions, out: Path, cancel) -> np.ndarray:
    """The output values from the (sieved) codes, and the (K, K) matrix of pixel counts."""
    K = len(classes)
    lut = classes.value_index()
    value = np.zeros(2 + K * K, np.uint16)  # working code -> output value (unchanged: per class, below)
    for i in range(K):
        for j in range(K):
            if i != j:
                value[2 + i * K + j] = legend.value(i, j)
    keep = np.array([legend.value(i, i) for i in range(K)], np.uint16)
    counts = np.zeros((K, K), np.int64)
    with rasterio.open(codes) as src:
        profile = dict(src.profile, nodata=NODATA)
        with rasterio.open(out, "w", **profile) as dst:
            for row in range(0, src.height, STRIP):
                if cancel is not None and cancel():
                    raise Cancelled("change map cancelled; no output was written")
                w = Window(0, row, src.width, min(STRIP, src.height - row))
                code = src.read(1, window=w).astype(np.int64)
                i_a = _indices(a, w, lut)
                stable = (code == 1) & (i_a >= 0)
                moved = code >= 2
                pair = np.where(moved, code - 2, np.where(stable, i_a * K + i_a, -1))
                counts += np.bincount(pair[pair >= 0], minlength=K * K).reshape(K, K)
                result = np.where(moved, value[np.clip(code, 0, len(value) - 1)], NODATA).astype(np.uint16)
                result[stable] = keep[i_a[stable]]
                dst.write(result, 1, window=w)
    return counts


def _style(out: Path, qml: Path, legend: Transitions, present: ClassTable, map_a, map_b, mmu, records: dict) -> None:
    """The full legend in the file's metadata (maps of the same settings share it), no colour table (a
    uint16 GeoTIFF's would list 65,536 entries), and a .qml listing only the entries the map holds."""
    from ..style import paletted_qml

    table = legend.table()
    style_class_map(out, table, **{CHANGE_TAG: json.dumps({"map_a": os.path.abspath(map_a), "map_b": os.path.abspath(map_b),
                                                     "inputs": records, "unchanged": legend.unchanged, "mmu": mmu,
                                                     "groups": [[g.source, g.target, g.name] for g in legend.groups],
                                                     "classes": legend.classes.to_dict()})})
    qml.write_text(paletted_qml(present))


def write_matrix(result: ChangeResult, csv_path=None, html_path=None) -> None:
    """The transition matrix (mapped ha; rows: date A, columns: date B) as CSV and/or HTML."""
    from ..files import atomic_path

    names = list(result.classes.names)
    if csv_path is not None:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["from \\ to (ha)", *names, "total"])
        for i, n in enumerate(names):
            w.writerow([n, *(f"{v:.4f}" for v in result.matrix_ha[i]), f"{result.matrix_ha[i].sum():.4f}"])
        w.writerow(["total", *(f"{v:.4f}" for v in result.matrix_ha.sum(0)), f"{result.total_ha:.4f}"])
        with atomic_path(csv_path) as tmp:
            Path(tmp).write_text(buf.getvalue())
    if html_path is not None:
        with atomic_path(html_path) as tmp:
            Path(tmp).write_text(matrix_html(result))


def matrix_html(result: ChangeResult) -> str:
    names = list(result.classes.names)
    esc = html.escape
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    body = "".join(
        f"<tr><th>{esc(a)}</th>" + "".join(
            f"<td{' class=diag' if i == j else ''}>{result.matrix_ha[i, j]:,.2f}</td>" for j in range(len(names)))
        + f"<td>{result.matrix_ha[i].sum():,.2f}</td></tr>" for i, a in enumerate(names))
    total = "".join(f"<td>{v:,.2f}</td>" for v in result.matrix_ha.sum(0))
    share = 100 * result.changed_ha / max(result.total_ha, 1e-12)
    notes = "".join(f"<li>{esc(n)}</li>" for n in result.notes)
    return (f"<!doctype html><meta charset='utf-8'><title>Land-cover change: {esc(result.path.name)}</title>"
            "<style>body{font-family:sans-serif} td,th{padding:2px 8px;text-align:right;border:1px solid #ccc}"
            " table{border-collapse:collapse} td.diag{background:#eee}</style>"
            f"<h1>Land-cover change: {esc(result.path.name)}</h1>"
            f"<p>Mapped change: {result.changed_ha:,.2f} ha of {result.total_ha:,.2f} ha ({share:.2f} %). These are "
            f"mapped areas: their errors are unknown until a sample is labelled (`stars sample` with this map as "
            f"strata, then `stars assess`).</p>"
            f"<h2>Transition matrix (mapped ha)</h2><p>rows: class at date A, columns: class at date B; the "
            f"diagonal is unchanged</p><table><tr><th></th>{head}<th>total</th></tr>{body}"
            f"<tr><th>total</th>{total}<td>{result.total_ha:,.2f}</td></tr></table>"
            + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""))


def change_polygons(result: ChangeResult, legend: Transitions, out, cancel, log) -> Path:
    """The changed patches as polygons with from_class, to_class and area (unchanged pixels left out)."""
    from osgeo import ogr

    from ..product.polygons import polygonize

    entries = legend.entries()
    with tempfile.TemporaryDirectory(dir=Path(out).resolve().parent, prefix=".stars-change-") as tmp:
        only = Path(tmp) / "changed.tif"
        with rasterio.open(result.path) as src:
            profile = dict(src.profile)
            with rasterio.open(only, "w", **profile) as dst:
                for row in range(0, src.height, STRIP):
                    w = Window(0, row, src.width, min(STRIP, src.height - row))
                    v = src.read(1, window=w)
                    dst.write(np.where(legend.is_change(v), v, NODATA).astype(v.dtype), 1, window=w)
        polygonize(only, out, class_table=result.legend, cancel=cancel, log=log)
    ds = ogr.Open(os.fspath(out), 1)
    layer = ds.GetLayerByName("landcover")
    for name in ("from_class", "to_class"):
        layer.CreateField(ogr.FieldDefn(name, ogr.OFTString))
    layer.StartTransaction()
    for f in layer:
        _, a, b = entries[int(f.GetField("value")) - 1]
        f.SetField("from_class", a)
        f.SetField("to_class", b)
        layer.SetFeature(f)
    layer.CommitTransaction()
    layer = ds = None
    return Path(out)
