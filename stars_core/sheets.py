"""Segmenting a large raster sheet by sheet: one classified GeoTIFF per map sheet (clipped to the
sheet polygon), a VRT mosaic of all sheets and a summary table. The model loads once; sheets
already done can be skipped (an interrupted run resumes); a failing sheet is reported and the
others go on."""
from __future__ import annotations

import csv
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import rasterio
from rasterio.windows import from_bounds

from .config import SegmentConfig
from .files import atomic_path, check_outputs
from .infer import band_order, open_runner, segment
from .raster import geometries_in, open_raster, read_polygons
from .runtime import Cancelled, InputError


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
    """(CRS WKT, [(sheet name, GeoJSON polygon)]) from a polygon file; unnamed sheets are numbered."""
    wkt, items = read_polygons(path, name_field)
    named = [(str(v) if v not in (None, "") else f"sheet_{i + 1}", g) for i, (g, v) in enumerate(items)]
    names = [safe_name(n) for n, _ in named]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:5]
        raise InputError(f"sheet names must be unique once made file-safe; repeated: {dup}. Choose another "
                         f"name field or leave it empty to number the sheets")
    return wkt, named


def _is_complete(path: Path) -> bool:
    try:
        with rasterio.open(path) as ds:
            return ds.count == 1 and "STARS_CLASSES" in ds.tags(1)
    except rasterio.errors.RasterioIOError:
        return False


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
) -> SheetsResult:
    """Segment `input` once per sheet into `out_dir/<sheet>.tif`, then write `out_dir/mosaic.vrt`
    and `out_dir/summary.csv`. `sheets` is (CRS WKT, [(name, GeoJSON polygon)])."""
    from osgeo import gdal

    out_dir = Path(out_dir)
    check_outputs({"input raster": input, "model file": model if isinstance(model, (str, os.PathLike)) else None},
                  {}, {"sheets folder": out_dir})
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = open_runner(model, cfg)  # loaded once for every sheet (.stars or .onnx)
    wkt, items = sheets
    if not items:
        raise InputError("the map-sheet layer holds no polygons")
    rows: list[SheetRow] = []
    with open_raster(input, "input") as src:
        # A band mismatch would fail every sheet: say so once, before the first.
        band_order(src, loaded.stats[cfg.modality - 1], "input", os.fspath(input), lambda _: None)
        geoms = geometries_in(wkt, [(g, n) for n, g in items], src.crs)
        for i, (geom, name) in enumerate(geoms):
            if cancel is not None and cancel():
                raise Cancelled("map-sheet run cancelled")
            path = out_dir / f"{safe_name(name)}.tif"
            row = SheetRow(str(name), "done", str(path))
            start = time.perf_counter()
            if skip_existing and _is_complete(path):
                row.status = "skipped"
                log(f"sheet {name}: already done, skipped")
            else:
                window = _window(src, geom)
                if window is None:
                    row.status, row.message = "outside", "the sheet does not overlap the raster"
                    log(f"sheet {name}: outside the raster, nothing written")
                else:
                    vrt = out_dir / f".{safe_name(name)}.input.vrt"
                    try:
                        gdal.Translate(str(vrt), os.fspath(input), format="VRT",
                                       srcWin=[int(window.col_off), int(window.row_off), int(window.width),
                                               int(window.height)])
                        r = segment(loaded, vrt, path, cfg, clip=(src.crs.to_wkt(), [geom]), cancel=cancel)
                        row.message = ", ".join(f"{k} {v}" for k, v in r.class_pixels.items())
                        log(f"sheet {name}: {r.width} x {r.height} px in {r.seconds:.1f} s -> {path.name}")
                    except Cancelled:
                        raise
                    except Exception as exc:  # one bad sheet must not stop the others
                        row.status, row.message = "failed", str(exc).replace(str(vrt), os.fspath(input))
                        log(f"sheet {name}: FAILED: {exc}")
                    finally:
                        vrt.unlink(missing_ok=True)
            row.seconds = time.perf_counter() - start
            rows.append(row)
            if progress is not None:
                progress(i + 1, len(geoms))

    done = [r.path for r in rows if r.status in ("done", "skipped")]
    mosaic = None
    if done:
        mosaic = out_dir / "mosaic.vrt"
        with atomic_path(mosaic) as tmp:
            ds = gdal.BuildVRT(str(tmp), done)
            ds = None  # noqa: F841 (closing writes the file)
            _relative_sources(tmp)
    summary = out_dir / "summary.csv"
    with atomic_path(summary) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sheet", "status", "file", "seconds", "details"])
        for r in rows:
            w.writerow([r.name, r.status, r.path, f"{r.seconds:.2f}", r.message])
    return SheetsResult(rows, mosaic, summary)


def _window(src, geom: dict):
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


def _relative_sources(vrt: Path) -> None:
    """Make the mosaic's source paths relative so the folder can be moved as a whole."""
    text = vrt.read_text()
    prefix = str(vrt.parent) + os.sep
    text = text.replace(f'relativeToVRT="0">{prefix}', 'relativeToVRT="1">')
    vrt.write_text(text)
