"""Segmenting a large raster sheet by sheet: one classified GeoTIFF per map sheet (clipped to the
sheet polygon), a VRT mosaic of all sheets and a summary table. The model loads once; sheets
already done can be skipped (an interrupted run resumes); a failing sheet is reported and the
others go on."""
from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import rasterio

from ..config import SegmentConfig
from ..classmap import is_class_map
from ..files import atomic_path, check_outputs
from .infer import band_order, open_runner, segment
from ..raster import geometries_in, open_raster, read_polygons, window_of
from ..style import paletted_qml
from ..errors import Cancelled, InputError


@dataclass
class SheetRow:
    name: str
    status: str  # "done", "skipped", "failed", "outside"
    path: str
    seconds: float = 0.0
    message: str = ""


@dataclass
class SheetsResult:
    rows: list[SheetRow]
    mosaic: Path | None
    summary: Path

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)


def safe_name(name: str) -> str:
    """A file-name-safe version of a sheet name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "sheet"


def read_sheets(path: str | os.PathLike, name_field: str | None = None) -> tuple[str, list[tuple[str, dict]]]:
    """(CRS WKT, [(sheet name, GeoJSON polygon or None)]) from a polygon file; unnamed sheets are
    numbered, and a feature without a geometry is kept (None) so the summary can name it."""
    wkt, items = read_polygons(path, name_field, keep_empty=True)
    named = [(str(v) if v not in (None, "") else f"sheet_{i + 1}", g) for i, (g, v) in enumerate(items)]
    names = [safe_name(n) for n, _ in named]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:5]
        raise InputError(f"sheet names must be unique once made file-safe; repeated: {dup}. Choose another "
                         f"name field or leave it empty to number the sheets")
    return wkt, named


def select_sheets(sheets: tuple[str, list], only: list[str]) -> tuple[str, list]:
    """Keep the sheets named in `only`: names as read or made file-safe, or sheet numbers (1 is the
    file's first feature, as in sheet_1); an unknown name or an empty list is refused."""
    wkt, named = sheets
    asked = [n.strip() for n in only if n.strip()]
    if not asked:
        raise InputError(f"--only names no sheet ({','.join(only)!r}): give sheet names or numbers separated by "
                         f"commas, e.g. --only 1,3")
    known = {n for n, _ in named} | {safe_name(n) for n, _ in named}
    wanted = {named[int(n) - 1][0] if n not in known and n.isdigit() and 1 <= int(n) <= len(named) else n
              for n in asked}
    unknown = sorted(wanted - known)
    if unknown:
        some = ", ".join(n for n, _ in named[:8]) + (" ..." if len(named) > 8 else "")
        raise InputError(f"--only names sheets the sheet file does not have: {', '.join(unknown[:5])}; its sheets "
                         f"are {some} (or numbers 1 to {len(named)}; check --name-field)")
    return wkt, [(n, g) for n, g in named if n in wanted or safe_name(n) in wanted]


def _is_complete(path: Path) -> bool:
    try:
        with rasterio.open(path) as ds:
            return is_class_map(ds)
    except rasterio.errors.RasterioIOError:
        return False


@dataclass(frozen=True)
class Share:
    """This process's part of a run over many processes (torchrun): rank `rank` of `world`."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> "Share":
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))


def assign(sizes: Sequence[int], world: int) -> list[list[int]]:
    """Sheet indices per rank: largest sheets first, each to the rank with the least work so far
    (ties to the lowest rank), so ranks finish together. Deterministic for the same sheets."""
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    loads, shares = [0] * world, [[] for _ in range(world)]
    for i in order:
        r = min(range(world), key=lambda k: (loads[k], k))
        shares[r].append(i)
        loads[r] += sizes[i]
    return shares


@dataclass
class SheetPlan:
    """The sheets of a run: names, polygons in the raster's CRS, pixel windows (None where a sheet
    cannot be segmented, with its status and reason in `unusable`), and the sheet indices per rank."""

    names: list[str]
    geoms: list[dict | None]
    windows: list
    shares: list[list[int]]
    unusable: dict[int, tuple[str, str]]


def plan_sheets(input: str | os.PathLike, sheets: tuple[str, Sequence[tuple[str, dict | None]]],
                world: int = 1) -> SheetPlan:
    """Where each sheet lies on the raster and which process takes it. Refuses a run in which no
    sheet can be segmented, naming each sheet's reason."""
    wkt, items = sheets
    if not items:
        raise InputError("the map-sheet layer holds no features")
    unusable = {i: why for i, (_, g) in enumerate(items) if (why := _unusable(g)) is not None}
    with open_raster(input, "input") as src:
        geoms = [g for g, _ in geometries_in(wkt, [(g, n) for n, g in items], src.crs)]
        windows = [None if i in unusable else window_of(src, g) for i, g in enumerate(geoms)]
    for i, w in enumerate(windows):
        if w is None and i not in unusable:
            unusable[i] = ("outside", "the sheet does not overlap the raster")
    names = [str(n) for n, _ in items]
    if len(unusable) == len(items):
        reasons = "; ".join(f"{names[i]}: {why}" for i, (_, why) in sorted(unusable.items())[:5])
        raise InputError(f"none of the {len(items)} map sheets can be segmented ({reasons}"
                         f"{'; ...' if len(items) > 5 else ''}); check that the sheet layer covers {os.fspath(input)!r} "
                         f"(its CRS and extent) and that its polygons are valid")
    sizes = [0 if w is None else int(w.width * w.height) for w in windows]
    return SheetPlan(names, geoms, windows, assign(sizes, world), unusable)


def _unusable(geom: dict | None) -> tuple[str, str] | None:
    """(status, reason) for a sheet polygon that cannot be segmented, or None."""
    if geom is None:
        return "invalid", "the feature has no geometry"
    from shapely.geometry import shape
    from shapely.validation import explain_validity

    poly = shape(geom)
    if poly.is_empty:
        return "invalid", "the feature has no geometry"
    if (poly.buffer(0) if not poly.is_valid else poly).area <= 0:  # a line or a point drawn as a polygon
        return "invalid", "the polygon has no area"
    if not poly.is_valid:
        return "invalid", (f"the polygon is not valid ({explain_validity(poly)}); repair it (QGIS: Fix geometries) "
                           f"and run again")
    return None


def segment_sheets(
    model,
    input: str | os.PathLike,
    sheets: tuple[str, Sequence[tuple[str, dict]]],
    out_dir: str | os.PathLike,
    cfg: SegmentConfig = SegmentConfig(),
    *,
    skip_existing: bool = True,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    log: Callable[[str], None] = print,
    share: Share = Share(),
    barrier: Callable[[], None] | None = None,
) -> SheetsResult:
    """Segment `input` once per sheet into `out_dir/<sheet>.tif`, then write `out_dir/mosaic.vrt`
    and `out_dir/summary.csv`. `sheets` is (CRS WKT, [(name, GeoJSON polygon)]). Under torchrun
    (`share`, `barrier`) each rank takes its share of the sheets (largest first) and rank 0 writes
    the mosaic and the summary once every rank has finished; a rerun skips the sheets already done."""
    out_dir = Path(out_dir)
    model_path = model if isinstance(model, (str, os.PathLike)) else getattr(model, "path", None)
    check_outputs({"input raster": input, "model file": model_path}, {}, {"sheets folder": out_dir})
    plan = plan_sheets(input, sheets, share.world)  # refuses a run where no sheet can be segmented
    out_dir.mkdir(parents=True, exist_ok=True)
    if share.rank == 0:
        remove_stale_temporaries(out_dir)
    if barrier is not None:  # no rank writes before the leftovers of a killed run are gone
        barrier()
    loaded = open_runner(model, cfg)  # loaded once for every sheet (.stars or .onnx)
    mmu, cfg = (cfg.mmu, cfg.mmu_connectivity), dataclasses.replace(cfg, mmu=None)  # the mosaic is cleaned, not sheets
    names = plan.names
    with open_raster(input, "input") as src:
        # A band mismatch would fail every sheet: say so once, before the first.
        band_order(src, loaded.stats[cfg.modality - 1], "input", os.fspath(input), lambda _: None)
        mine = plan.shares[share.rank]
        rows = []
        for done, i in enumerate(mine, start=1):
            if cancel is not None and cancel():
                raise Cancelled("map-sheet run cancelled; the sheets written so far are complete, a rerun skips them")
            rows.append(_one_sheet(loaded, src, input, names[i], plan.geoms[i], plan.windows[i], out_dir, cfg,
                                   skip_existing, cancel, log, plan.unusable.get(i)))
            if progress is not None:
                progress(done, len(mine))
    _write_rows(out_dir / f".rows-rank{share.rank}.json", rows)
    if barrier is not None:
        barrier()
    if share.rank != 0:
        return SheetsResult(rows, None, out_dir / "summary.csv")
    everything = [r for k in range(share.world) for r in _read_rows(out_dir / f".rows-rank{k}.json")]
    order = {n: i for i, n in enumerate(names)}
    everything.sort(key=lambda r: order.get(r.name, len(order)))
    return _finish(out_dir, everything, loaded.classes, mmu, log)


def _one_sheet(loaded, src, input, name: str, geom: dict, window, out_dir: Path, cfg: SegmentConfig,
               skip_existing: bool, cancel, log, unusable: tuple[str, str] | None = None) -> SheetRow:
    from osgeo import gdal

    path = out_dir / f"{safe_name(name)}.tif"
    row = SheetRow(name, "done", str(path))
    start = time.perf_counter()
    if unusable is not None:
        row.status, row.message = unusable
        row.path = ""
        log(f"sheet {name}: {row.message}; nothing written")
    elif skip_existing and _is_complete(path):
        row.status = "skipped"
        log(f"sheet {name}: already done, skipped")
    else:
        vrt = out_dir / f".{safe_name(name)}.input.vrt"
        try:
            gdal.Translate(str(vrt), os.fspath(input), format="VRT",
                           srcWin=[int(window.col_off), int(window.row_off), int(window.width), int(window.height)])
            r = segment(loaded, vrt, path, cfg, clip=(src.crs.to_wkt(), [geom]), cancel=cancel, calibration=input,
                        info=log)
            row.message = ", ".join(f"{k} {v}" for k, v in r.class_pixels.items())
            log(f"sheet {name}: {r.width} x {r.height} px in {r.seconds:.1f} s ({r.runtime}) -> {path.name}")
        except Cancelled:
            raise
        except Exception as exc:  # one bad sheet must not stop the others
            row.status, row.message = "failed", str(exc).replace(str(vrt), os.fspath(input))
            log(f"sheet {name}: FAILED: {row.message}")
        finally:
            vrt.unlink(missing_ok=True)
    row.seconds = time.perf_counter() - start
    return row


def _write_rows(path: Path, rows: list[SheetRow]) -> None:
    import json
    from dataclasses import asdict

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps([asdict(r) for r in rows]))


def _read_rows(path: Path) -> list[SheetRow]:
    import json

    if not path.is_file():
        return []
    rows = [SheetRow(**r) for r in json.loads(path.read_text())]
    path.unlink()
    return rows


def _finish(out_dir: Path, rows: list[SheetRow], classes, mmu: tuple = (None, 8), log=print) -> SheetsResult:
    """The mosaic of every sheet on disk that is complete, with the map's QGIS style (class names and
    colours, only the classes) beside it, and the summary of this run. With a minimum mapping unit,
    the mosaic is cleaned as one raster (mosaic_mmu.tif): a patch that crosses a sheet edge is one
    patch, so cleaning leaves no seams (cleaning sheet by sheet would cut such patches in two)."""
    from osgeo import gdal

    done = [r.path for r in rows if r.status in ("done", "skipped")]
    mosaic = None
    if done:
        mosaic = out_dir / "mosaic.vrt"
        with atomic_path(mosaic) as tmp:
            ds = gdal.BuildVRT(str(tmp), done)
            ds = None  # noqa: F841 (closing writes the file)
            _relative_sources(tmp)
        with atomic_path(mosaic.with_suffix(".qml")) as tmp:
            Path(tmp).write_text(paletted_qml(classes))
        if mmu[0] is not None:
            from ..product.mmu import clean_map

            clean_map(mosaic, out_dir / "mosaic_mmu.tif", mmu[0], mmu[1], log=log)
    summary = out_dir / "summary.csv"
    with atomic_path(summary) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sheet", "status", "file", "seconds", "details"])
        for r in rows:
            w.writerow([r.name, r.status, r.path, f"{r.seconds:.2f}", r.message])
    return SheetsResult(rows, mosaic, summary)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Temporary files a killed process left (`.<name>.tmp-<pid>...` of a process that is gone)."""
    import shutil

    removed = []
    for path in folder.glob(".*.tmp-*"):
        m = re.search(r"\.tmp-(\d+)", path.name)
        if m and not _alive(int(m.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    for path in list(folder.glob(".*.input.vrt")) + list(folder.glob(".stars-work-*")):  # a run's scratch
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _relative_sources(vrt: Path) -> None:
    """Make the mosaic's source paths relative so the folder can be moved as a whole."""
    text = vrt.read_text()
    prefix = str(vrt.parent) + os.sep
    text = text.replace(f'relativeToVRT="0">{prefix}', 'relativeToVRT="1">')
    vrt.write_text(text)


def make_sheet_grid(raster: str | os.PathLike, size: int, out: str | os.PathLike, overlap: int = 0) -> int:
    """Write a GeoPackage of square sheets of `size` pixels (plus `overlap` pixels on each side,
    inside the raster) covering `raster`, named R001C001...; returns the number of sheets."""
    import json

    from osgeo import ogr, osr

    if size < 32:
        raise InputError(f"sheet size must be at least 32 pixels, got {size}")
    if overlap < 0 or overlap >= size:
        raise InputError(f"overlap must be in 0..{size - 1} pixels, got {overlap}")
    check_outputs({"raster": raster}, {"sheet grid": out})
    with open_raster(raster, "input") as src:
        t, width, height, wkt = src.transform, src.width, src.height, src.crs.to_wkt()
    rows, cols = math.ceil(height / size), math.ceil(width / size)
    with atomic_path(out) as tmp:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(wkt)
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp))
        layer = ds.CreateLayer("sheets", srs, ogr.wkbPolygon)
        layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
        for r in range(rows):
            for c in range(cols):
                r0, c0 = max(0, r * size - overlap), max(0, c * size - overlap)
                r1, c1 = min(height, (r + 1) * size + overlap), min(width, (c + 1) * size + overlap)
                corners = [t * (c0, r0), t * (c1, r0), t * (c1, r1), t * (c0, r1), t * (c0, r0)]
                feature = ogr.Feature(layer.GetLayerDefn())
                feature.SetField("name", f"R{r + 1:03d}C{c + 1:03d}")
                feature.SetGeometry(ogr.CreateGeometryFromJson(json.dumps({"type": "Polygon", "coordinates": [corners]})))
                layer.CreateFeature(feature)
        ds = None  # noqa: F841 (closing writes the file)
    return rows * cols
