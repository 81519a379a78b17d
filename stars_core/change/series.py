"""A land-cover map for every date of a SAR series, on one common grid, with one model load.

Dates come from a CSV (columns date, path; paths relative to it), else from each file's name (an ISO
date: 2024-05-01 or 20240501) or its GDAL metadata (TIFFTAG_DATETIME, ACQUISITION_DATE, DATE);
missing or duplicate dates are refused in one line before any work, and so are dates whose raster
lies entirely outside the grid or has another band count than the model's. The grid is the first
date's raster, or `grid`: every other date is warped onto it on the fly (a GDAL VRT, bilinear), so
pixels a date does not cover are no data for that date. Each date is one `infer.segment` run (its
streaming, tiling and runtime; a .stars model is loaded once and its fast export made once); memory
does not grow with the number of dates. A rerun skips dates already done (`series.csv` records
them). Per-date class probabilities, when asked for, are written as uint8 (value = round(255 p))
beside each map: a quarter of float32's size, at 1/255 resolution.
"""
from __future__ import annotations

import csv
import datetime as dt
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from ..classmap import is_class_map
from ..config import SegmentConfig
from ..errors import Cancelled, InputError
from ..files import atomic_path, check_outputs
from ..raster import open_raster, same_grid

ISO = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
DATE_TAGS = ("TIFFTAG_DATETIME", "ACQUISITION_DATE", "ACQUISITION_START_TIME", "DATE", "DATETIME")
RECORD = "series.csv"


@dataclass
class DateInput:
    date: str  # ISO yyyy-mm-dd
    path: str


@dataclass
class SeriesResult:
    folder: Path
    record: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    maps: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def parse_date(text: str) -> str | None:
    """The first valid ISO calendar date in `text` (2024-05-01, 20240501, 2024:05:01 12:00), or None."""
    for m in ISO.finditer(str(text).replace(":", "-")):
        try:
            return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
        except ValueError:
            continue
    return None


def read_dates(rasters: Sequence[str | os.PathLike] = (), table: str | os.PathLike | None = None) -> list[DateInput]:
    """The series' dates and rasters, sorted by date (see the module docstring)."""
    found: list[DateInput] = []
    if table is not None:
        found += _dates_from_table(Path(table))
    for path in rasters:
        date = parse_date(Path(path).name) or _date_from_metadata(path)
        if date is None:
            raise InputError(f"no date for {os.fspath(path)!r}: put an ISO date in its name (e.g. S1_2024-05-01.tif), "
                             f"set TIFFTAG_DATETIME, or give a CSV of date,path with --dates")
        found.append(DateInput(date, os.fspath(path)))
    if not found:
        raise InputError("give the series: SAR rasters, or a CSV of date,path with --dates")
    by_date: dict[str, str] = {}
    for d in found:
        if d.date in by_date:
            raise InputError(f"two rasters for {d.date}: {by_date[d.date]!r} and {d.path!r}; keep one per date (or "
                             f"mosaic them first, e.g. gdalbuildvrt)")
        by_date[d.date] = d.path
    return sorted(found, key=lambda d: d.date)


def _dates_from_table(path: Path) -> list[DateInput]:
    if not path.is_file():
        raise FileNotFoundError(f"dates table {os.fspath(path)!r} not found")
    rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    if not rows or not {"date", "path"} <= set(rows[0]):
        raise InputError(f"dates table {os.fspath(path)!r} needs the columns date and path")
    out = []
    for n, row in enumerate(rows, start=2):
        date = parse_date(row["date"] or "")
        if date is None:
            raise InputError(f"dates table {os.fspath(path)!r}, line {n}: {row['date']!r} is not a date (yyyy-mm-dd)")
        raster = Path(row["path"] or "")
        out.append(DateInput(date, os.fspath(raster if raster.is_absolute() else path.parent / raster)))
    return out


def _date_from_metadata(path) -> str | None:
    try:
        with rasterio.open(path) as ds:
            tags = {**ds.tags(), **ds.tags(1)}
    except rasterio.errors.RasterioIOError:
        return None
    return next((parse_date(tags[k]) for k in DATE_TAGS if k in tags and parse_date(tags[k])), None)


def segment_series(model, dates: Sequence[DateInput], out_dir: str | os.PathLike, cfg: SegmentConfig = SegmentConfig(),
                   *, grid: str | os.PathLike | None = None, skip_existing: bool = True, probabilities: bool = False,
                   cancel: Callable[[], bool] | None = None,
                   progress: Callable[[int, int, int, int], None] | None = None,
                   log: Callable[[str], None] = print, info: Callable[[str], None] | None = None) -> SeriesResult:
    """A map per date into `out_dir` (`<date>.tif`, and `<date>_probabilities.tif` with
    `probabilities`), recorded in `series.csv`. `progress(date index, dates, tiles done, tiles)`."""
    from ..segmentation.infer import open_runner

    out = Path(out_dir)
    check_outputs({**{f"raster of {d.date}": d.path for d in dates}, "grid": grid,
                   "model file": model if isinstance(model, (str, os.PathLike)) else None}, {}, {"output folder": out})
    reference = grid or dates[0].path
    runner = open_runner(model, cfg)  # once for the whole series (and its fast export once, on first use)
    _check_dates(dates, reference, runner, cfg)
    out.mkdir(parents=True, exist_ok=True)
    result = SeriesResult(out, out / RECORD)
    rows = _read_record(result.record)
    for k, d in enumerate(dates):
        if cancel is not None and cancel():
            raise Cancelled(f"series cancelled before {d.date}; the {len(result.done)} date(s) done are kept and a "
                            f"rerun skips them")
        target = out / f"{d.date}.tif"
        if skip_existing and _done(target, rows.get(d.date), d.path):
            result.skipped.append(d.date)
            result.maps[d.date] = target
            continue
        start = time.perf_counter()
        _segment_date(runner, d, reference, target, cfg, probabilities, k, len(dates), progress, cancel, info)
        rows[d.date] = {"date": d.date, "source": os.path.abspath(d.path), "map": target.name,
                        "probabilities": f"{d.date}_probabilities.tif" if probabilities else "",
                        "seconds": f"{time.perf_counter() - start:.1f}"}
        _write_record(result.record, rows)
        result.done.append(d.date)
        result.maps[d.date] = target
        log(f"{d.date}: {target.name} ({time.perf_counter() - start:.1f} s)")
    return result


def filter_folder(folder: str | os.PathLike, switch: float = 0.02, cancel=None, progress=None) -> dict:
    """The temporal filter (`temporal.filter_series`) over every date of a series folder made with
    probabilities: `<date>_filtered.tif` beside each `<date>.tif`; series.csv records them."""
    from .temporal import filter_series, filtered_names

    folder = Path(folder)
    rows = _read_record(folder / RECORD)
    if len(rows) < 2:
        raise InputError(f"{os.fspath(folder)!r} holds no series of 2 or more dates (series.csv); run "
                         f"`stars segment-series ... --probabilities` first")
    dates = sorted(rows)
    missing = [d for d in dates if not rows[d].get("probabilities") or not (folder / rows[d]["probabilities"]).is_file()]
    if missing:
        raise InputError(f"the dates {', '.join(missing)} have no probabilities: the temporal filter needs them; "
                         f"segment again with --probabilities --no-skip-existing")
    maps = [folder / rows[d]["map"] for d in dates]
    outs = filtered_names(maps)
    counts = filter_series([folder / rows[d]["probabilities"] for d in dates], maps, outs, switch, cancel, progress)
    for d, out in zip(dates, outs):
        rows[d]["filtered"] = out.name
    _write_record(folder / RECORD, rows)
    return {**counts, "outputs": outs}


def period_map(folder: str | os.PathLike, period: str | None, which: str, out: Path, filtered: bool | None = None,
               cancel=None) -> tuple[Path, str]:
    """The class map of a period of a series folder: `period` is a date, a range FROM:TO (either end
    may be left out), or None with `which` "first"/"last". A period of several dates is their
    per-pixel most frequent class (ties: the latest date), written to `out`. The filtered maps are
    used where the folder has them (unless `filtered` says otherwise). Returns (map, what it is)."""
    folder = Path(folder)
    rows = _read_record(folder / RECORD)
    if not rows:
        raise InputError(f"{os.fspath(folder)!r} is not a series folder (no series.csv); make one with "
                         f"`stars segment-series`")
    dates = sorted(rows)
    if period is None:
        chosen = [dates[0] if which == "first" else dates[-1]]
    else:
        lo, sep, hi = period.partition(":")
        lo_d, hi_d = (parse_date(x) if x else None for x in (lo, hi if sep else lo))
        if (lo and lo_d is None) or (sep and hi and hi_d is None):
            raise InputError(f"period {period!r}: give a date (2024-05-01) or a range (2024-04-01:2024-06-30)")
        chosen = [d for d in dates if (lo_d is None or d >= lo_d) and (hi_d is None or d <= hi_d)]
        if not chosen:
            raise InputError(f"no date of the series falls in {period!r} (the series has {dates[0]} to {dates[-1]})")
    use_filtered = all(rows[d].get("filtered") for d in chosen) if filtered is None else filtered
    key = "filtered" if use_filtered else "map"
    paths = [folder / rows[d][key] for d in chosen]
    label = (f"{chosen[0]}" if len(chosen) == 1 else f"{chosen[0]} to {chosen[-1]} ({len(chosen)} dates, most "
             f"frequent class)") + (" filtered" if use_filtered else "")
    if len(paths) == 1:
        return paths[0], label
    _mode_composite(paths, out, cancel)
    return out, label


def _mode_composite(paths: Sequence[Path], out: Path, cancel) -> None:
    """Each pixel's most frequent class over `paths` (ties: the latest), no data where all are."""
    from ..classmap import stored_classes, style_class_map

    srcs = [rasterio.open(p) for p in paths]
    try:
        classes = stored_classes(srcs[0])
        nodata = srcs[0].nodata
        with rasterio.open(out, "w", **srcs[0].profile) as dst:
            for row in range(0, srcs[0].height, 256):
                if cancel is not None and cancel():
                    raise Cancelled("cancelled; no output was written")
                w = Window(0, row, srcs[0].width, min(256, srcs[0].height - row))
                stack = np.stack([s.read(1, window=w) for s in srcs])  # (T, h, w)
                counts = np.stack([(stack == v).sum(0) for v in classes.values])  # (K, h, w)
                best = np.argmax(counts * (len(srcs) + 1) + _latest(stack, classes.values), axis=0)  # ties: latest
                result = np.asarray(classes.values)[best].astype(stack.dtype)
                if nodata is not None:
                    result[counts.sum(0) == 0] = nodata
                dst.write(result, 1, window=w)
    finally:
        for s in srcs:
            s.close()
    style_class_map(out, classes)


def _latest(stack: np.ndarray, values) -> np.ndarray:
    """(K, h, w): for each class, 1 + the latest date index holding it (0 if none): breaks ties."""
    T = stack.shape[0]
    return np.stack([np.max(np.where(stack == v, np.arange(1, T + 1)[:, None, None], 0), axis=0) for v in values])


def _check_dates(dates: Sequence[DateInput], reference, runner, cfg: SegmentConfig) -> None:
    """Every date overlaps the grid and has the model's band count: refused before any work."""
    from ..raster import check_overlap

    stats = getattr(runner, "stats", None)
    expected = None if stats is None or stats[cfg.modality - 1] is None else len(stats[cfg.modality - 1].names)
    with open_raster(reference, "grid") as ref:
        for d in dates:
            with open_raster(d.path, f"raster of {d.date}") as ds:
                if expected is not None and ds.count != expected:
                    raise InputError(f"the raster of {d.date} ({d.path!r}) has {ds.count} band(s), the model takes "
                                     f"{expected}: give every date the bands the model was trained on")
                check_overlap(ref, ds, "the series' grid", f"the raster of {d.date} ({d.path!r})")


def _segment_date(runner, d: DateInput, reference, target: Path, cfg, probabilities: bool, k: int, n: int,
                  progress, cancel, info) -> None:
    from osgeo import gdal

    from ..segmentation.infer import segment

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".stars-{d.date}-") as tmp:
        source = d.path
        with open_raster(reference, "grid") as ref, open_raster(d.path, f"raster of {d.date}") as ds:
            if not same_grid(ref, ds):  # onto the series' grid; outside the date's footprint: no data
                source = str(Path(tmp) / "on_grid.vrt")
                nodata = ds.nodata if ds.nodata is not None else (-9999 if ds.dtypes[0].startswith("float") else 0)
                gdal.Warp(source, d.path, format="VRT", dstSRS=ref.crs.to_wkt(), outputBounds=tuple(ref.bounds),
                          width=ref.width, height=ref.height, resampleAlg="bilinear", dstNodata=nodata)
        probs = Path(tmp) / "probabilities.tif" if probabilities else None
        segment(runner, source, target, cfg, probabilities=probs, cancel=cancel,
                progress=None if progress is None else (lambda done, total: progress(k, n, done, total)),
                info=info, calibration=d.path, overviews=False)  # the float probabilities are a step
        if probs is not None:
            to_uint8(probs, target.with_name(f"{d.date}_probabilities.tif"))


def to_uint8(src_path: Path, out: Path) -> None:
    """Float probabilities as uint8 (value = round(255 p), tagged STARS_PROBABILITY_SCALE=1/255); no
    data goes to the dataset mask, so every value 0..255 stays a probability."""
    with rasterio.open(src_path) as src, atomic_path(out) as tmp, rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        profile = dict(src.profile, dtype="uint8", nodata=None, compress="deflate", tiled=True)
        with rasterio.open(tmp, "w", **profile) as dst:  # the mask inside the file, not a .msk beside it
            for row in range(0, src.height, 512):
                w = Window(0, row, src.width, min(512, src.height - row))
                p = src.read(window=w)
                q = np.where(np.isfinite(p), np.round(np.clip(p, 0, 1) * 255), 0).astype(np.uint8)
                dst.write(q, window=w)
                dst.write_mask(np.isfinite(p).all(axis=0).astype(np.uint8) * 255, window=w)
            dst.descriptions = src.descriptions
            dst.update_tags(STARS_PROBABILITY_SCALE="1/255", **src.tags())


def _done(target: Path, row: dict | None, source: str) -> bool:
    """A date's map exists, is a finished STARS map and was made from the same raster."""
    if row is None or not target.is_file() or row.get("source") != os.path.abspath(source):
        return False
    try:
        with rasterio.open(target) as ds:
            return is_class_map(ds)
    except rasterio.errors.RasterioIOError:
        return False


def _read_record(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    return {r["date"]: r for r in csv.DictReader(path.read_text().splitlines()) if r.get("date")}


def _write_record(path: Path, rows: dict[str, dict]) -> None:
    fields = ["date", "source", "map", "probabilities", "seconds", "filtered"]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            for date in sorted(rows):
                w.writerow(rows[date])
