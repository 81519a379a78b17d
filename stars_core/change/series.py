"""A land-cover map for every date of a SAR series, on one common grid, with one model load.

Dates come from a CSV (columns date, path; paths relative to it), else from each file's name (an ISO
date: 2024-05-01 or 20240501) or its GDAL metadata (TIFFTAG_DATETIME, ACQUISITION_DATE, DATE);
missing or duplicate dates are refused in one line before any work, and so are dates whose raster
lies entirely outside the grid or has another band count than the model's. The grid is the first
date's raster, or `grid`: every other date is warped onto it on the fly (a GDAL VRT, bilinear), so
pixels a date does not cover are no data for that date. Each date is one `infer.segment` run (its
streaming, tiling and runtime; a .stars model is loaded once and its fast export made once, an int8
one calibrated on the first date); memory does not grow with the number of dates. Under torchrun the
dates are split across processes (rank r maps dates r, r + world, ...): the same files as one process. A rerun skips dates already done when what made their maps
(model file, raster, grid, options: `series.csv` records it) is what this run would use, and makes
them again otherwise, saying why. Per-date class probabilities, when asked for, are written as uint8 (value = round(255 p))
beside each map, straight from segment's tile loop: a quarter of float32's size, at 1/255 resolution.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import os
import re
import socket
import tempfile
import time
from contextlib import contextmanager
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
    failed: dict[str, str] = field(default_factory=dict)  # date: why (under torchrun, where the others go on)


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
                   log: Callable[[str], None] = print, info: Callable[[str], None] | None = None,
                   share=None, barrier: Callable[[], None] | None = None) -> SeriesResult:
    """A map per date into `out_dir` (`<date>.tif`, and `<date>_probabilities.tif` with
    `probabilities`), recorded in `series.csv` with what made each map (`made_by`). A rerun keeps a
    date's map only when its record matches this run (model, raster, grid, options) and says why it
    makes one again. `progress(date index, dates, tiles done, tiles)`; `log` gets segment's warnings.
    Under torchrun (`share`, `barrier`) every process checks every date, then maps dates rank,
    rank + world, ... with its own model load, updating series.csv under its lock; a date that fails
    is named (`failed`) and the process goes on with its others; after `barrier`, rank 0's result
    holds every process's dates."""
    from ..segmentation.infer import open_runner, prepare_runtime
    from ..segmentation.sheets import Share

    share = share or Share()  # `sheets.Share`: rank and world
    out = Path(out_dir)
    check_outputs({**{f"raster of {d.date}": d.path for d in dates}, "grid": grid,
                   "model file": model if isinstance(model, (str, os.PathLike)) else None},
                  series_outputs(out, [d.date for d in dates]), {"output folder": out})
    rows = _read_record(out / RECORD)
    reference = grid or dates[0].path
    runner = open_runner(model, cfg)  # once for the whole series (and its fast export once, on first use)
    _check_dates(dates, reference, runner, cfg)
    made = made_by(model, runner, cfg, reference)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_scratch(out)
    if share.world > 1:  # the runtime's export (int8 calibration) made once, by rank 0, before any date
        if share.rank == 0:
            prepare_runtime(runner, cfg, dates[0].path, info)
        if barrier is not None:
            barrier()
    result = SeriesResult(out, out / RECORD)
    said: set[str] = set()
    for k in range(share.rank, len(dates), share.world):
        d = dates[k]
        if cancel is not None and cancel():
            raise Cancelled(f"series cancelled before {d.date}; the {len(result.done)} date(s) done are kept and a "
                            f"rerun skips them")
        target = out / f"{d.date}.tif"
        row = {**made, **source_stamp(d.path), "date": d.date, "source": os.path.abspath(d.path),
               "map": target.name, "probabilities": f"{d.date}_probabilities.tif" if probabilities else ""}
        why = _redo_reasons(target, rows.get(d.date), row) if skip_existing else ["asked to (no skipping)"]
        if not why:
            result.skipped.append(d.date)
            result.maps[d.date] = target
            continue
        if rows.get(d.date) is not None and skip_existing:
            log(f"{d.date}: made again: {'; '.join(why)}")
        start = time.perf_counter()
        try:
            _segment_date(runner, d, reference, target, cfg, probabilities, k, len(dates), progress, cancel, info,
                          _once(log, said, d.date), dates[0].path)
        except Cancelled:
            raise
        except Exception as exc:  # one process alone: stop here; one of many: name the date, go on
            if share.world == 1:
                raise
            result.failed[d.date] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log(f"{d.date}: FAILED: {result.failed[d.date]}")
            continue
        update_record(result.record, {d.date: {**row, "seconds": f"{time.perf_counter() - start:.1f}"}}, replace=True)
        result.done.append(d.date)
        result.maps[d.date] = target
        log(f"{d.date}: {target.name} ({time.perf_counter() - start:.1f} s)")
    if share.world > 1:
        _gather(result, share, barrier, [d.date for d in dates])
    return result


def _gather(result: SeriesResult, share, barrier: Callable[[], None] | None, order: list[str]) -> None:
    """Every process's dates into rank 0's `result`, once all have finished (a file per rank, then `barrier`)."""
    import json

    mine = result.folder / f".series-rank{share.rank}.json"
    with atomic_path(mine) as tmp:
        Path(tmp).write_text(json.dumps({"done": result.done, "skipped": result.skipped, "failed": result.failed}))
    if barrier is not None:
        barrier()
    if share.rank != 0:
        return
    result.done, result.skipped, result.failed = [], [], {}
    for rank in range(share.world):
        path = result.folder / f".series-rank{rank}.json"
        part = json.loads(path.read_text())
        path.unlink()
        result.done += part["done"]
        result.skipped += part["skipped"]
        result.failed.update(part["failed"])
    for dates in (result.done, result.skipped):
        dates.sort(key=order.index)
    for date in result.done + result.skipped:
        result.maps[date] = result.folder / f"{date}.tif"


def _scratch_prefix(date: str) -> str:
    """A date's scratch folder names its host and process, so a later run can remove it once that process is gone."""
    return f".stars-{date}.pid-{socket.gethostname()}-{os.getpid()}-"


def _remove_stale_scratch(out: Path) -> None:
    """Scratch folders of processes of this host that are gone (killed mid-date); those of running ones stay."""
    import shutil

    host = socket.gethostname()
    for path in out.glob(f".stars-*.pid-{host}-*"):
        m = re.search(rf"\.pid-{re.escape(host)}-(\d+)-", path.name)
        if m and path.is_dir() and not _running(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def series_outputs(out: Path, dates: Sequence[str]) -> dict[str, Path]:
    """Every file a series run may write into `out`, by what the user calls it (checked against the inputs)."""
    files = {"series record": out / RECORD}
    for date in dates:
        for suffix, what in (("", "map"), ("_probabilities", "probabilities"), ("_filtered", "filtered map")):
            files[f"{what} of {date}"] = out / f"{date}{suffix}.tif"
            if what != "probabilities":
                files[f"style of the {what} of {date}"] = out / f"{date}{suffix}.qml"
    return files


def recorded_files(folder: str | os.PathLike) -> dict[str, Path]:
    """The files of a series folder that its record names, by what the user calls them: series.csv,
    and each recorded date's map, probabilities and filtered map (the names series.csv holds and
    those a series writes) with the maps' styles. Other files of the folder are not the series'."""
    folder = Path(folder)
    rows = _read_record(folder / RECORD)
    if not rows:
        return {"series record": folder / RECORD}
    files = series_outputs(folder, sorted(rows))
    for date, row in rows.items():
        for key, what in (("map", "map"), ("probabilities", "probabilities"), ("filtered", "filtered map")):
            if row.get(key):
                files[f"{what} of {date} in series.csv"] = folder / row[key]
    return files


def _once(log: Callable[[str], None], said: set[str], date: str) -> Callable[[str], None]:
    """segment's warnings for a date, each said once for the whole series (with the first date it concerned)."""
    def forward(message: str) -> None:
        if message not in said:
            said.add(message)
            log(f"{date}: {message}")
    return forward


def made_by(model, runner, cfg: SegmentConfig, reference) -> dict[str, str]:
    """What makes a date's pixels besides its raster: the model file's SHA-256, the grid and the
    options that change pixels (tile size, overlap, runtime, weights, modality; where the int8
    export runs, its recipe: maps of an earlier recipe are made again)."""
    from ..engines.auto import INT8_WEIGHTS, choose, model_sha256
    from ..raster import crs_label

    path = model if isinstance(model, (str, os.PathLike)) else getattr(runner, "path", None)
    with open_raster(reference, "grid") as ref:
        t = ref.transform
        grid = f"{crs_label(ref.crs)} {ref.width}x{ref.height} from ({t.c:.6g}, {t.f:.6g}) step {t.a:.6g}x{-t.e:.6g}"
    options = {"tile": cfg.tile_size or "model's", "overlap": cfg.overlap if cfg.overlap is not None else "default",
               "runtime": cfg.runtime or "default", "weights": cfg.weights, "modality": cfg.modality}
    device = getattr(runner, "device_type", None)  # None: a .onnx file, run as it is
    if device is not None and choose(cfg.runtime, device, f"m{cfg.modality}", path is not None)[0] == "int8":
        options["int8"] = INT8_WEIGHTS
    return {"model_sha256": model_sha256(path) if path is not None else "", "grid": grid,
            "options": " ".join(f"{k}={v}" for k, v in options.items())}


def source_stamp(path: str | os.PathLike) -> dict[str, str]:
    """A date raster's size and modification time: a raster replaced at the same path differs."""
    st = os.stat(path)
    return {"source_size": str(st.st_size), "source_mtime_ns": str(st.st_mtime_ns)}


def _redo_reasons(target: Path, old: dict | None, new: dict) -> list[str]:
    """Why a date's map must be made again (empty: it is the map this run would make)."""
    if old is None or not target.is_file():
        return ["no map yet"]
    if old.get("source") != new["source"]:
        return [f"it was made from another raster ({old.get('source')!r})"]
    try:
        with rasterio.open(target) as ds:
            if not is_class_map(ds):
                return [f"{target.name} has no class table (not a finished STARS map)"]
    except rasterio.errors.RasterioIOError:
        return [f"{target.name} cannot be read"]
    if not old.get("model_sha256") or not old.get("source_size"):
        return ["its record does not say what made it (a series.csv of an earlier version)"]
    why = []
    if not new["model_sha256"] or old["model_sha256"] != new["model_sha256"]:
        why.append(f"another model (SHA-256 {old['model_sha256'][:12]}..., now {new['model_sha256'][:12] or '?'}...)")
    if (old.get("source_size"), old.get("source_mtime_ns")) != (new["source_size"], new["source_mtime_ns"]):
        why.append("its raster changed since (size or modification time)")
    if old.get("grid") != new["grid"]:
        why.append(f"another grid ({old.get('grid')}, now {new['grid']})")
    if old.get("options") != new["options"]:
        was = dict(o.split("=", 1) for o in (old.get("options") or "").split() if "=" in o)
        now = dict(o.split("=", 1) for o in new["options"].split())
        why.append("other options (" + ", ".join(f"{k} {was.get(k, '?')} -> {v}" for k, v in now.items()
                                                  if was.get(k) != v) + ")")
    if new["probabilities"] and (not old.get("probabilities") or not (target.parent / new["probabilities"]).is_file()):
        why.append("probabilities asked for and none were written")
    return why


def series_dates(out_dir: str | os.PathLike, dates: Sequence[DateInput]) -> list[str]:
    """The dates a series folder will hold after a run over `dates` (those recorded there and these)."""
    return sorted({d.date for d in dates} | set(_read_record(Path(out_dir) / RECORD)))


def check_filter(out_dir: str | os.PathLike, dates: Sequence[DateInput], switch: float) -> None:
    """A series run that ends with the temporal filter, refused before any work when the filter could
    not run: a switch outside (0, 1), fewer than 2 dates (given and already in the folder), or a date
    already in the folder, not given now, without probabilities."""
    from .temporal import check_switch

    check_switch(switch)
    rows = _read_record(Path(out_dir) / RECORD)
    given = {d.date for d in dates}
    if len(series_dates(out_dir, dates)) < 2:
        raise InputError(f"the temporal filter needs 2 or more dates and the series has 1 ({dates[0].date}); give "
                         f"more dates or leave the filter out")
    lacking = [d for d in sorted(set(rows) - given) if not rows[d].get("probabilities")
               or not (Path(out_dir) / rows[d]["probabilities"]).is_file()]
    if lacking:
        raise InputError(f"{os.fspath(out_dir)!r} also holds {', '.join(lacking)}, not given now and without "
                         f"probabilities, which the filter needs: give their rasters too, or choose another folder")


def filter_folder(folder: str | os.PathLike, switch: float = 0.02, cancel=None, progress=None) -> dict:
    """The temporal filter (`temporal.filter_series`) over every date of a series folder made with
    probabilities: `<date>_filtered.tif` (and its .qml) beside each `<date>.tif`; series.csv records them."""
    from .temporal import check_switch, filter_series, filtered_names

    check_switch(switch)
    folder = Path(folder)
    rows = _read_record(folder / RECORD)
    if len(rows) < 2:
        raise InputError(f"{os.fspath(folder)!r} holds no series of 2 or more dates (series.csv); run "
                         f"`stars segment-series ... --probabilities` first")
    dates = sorted(rows)
    missing = [d for d in dates if not rows[d].get("probabilities") or not (folder / rows[d]["probabilities"]).is_file()]
    if missing:
        raise InputError(f"the dates {', '.join(missing)} have no probabilities: the temporal filter needs them; "
                         f"segment again with --probabilities")
    maps = [folder / rows[d]["map"] for d in dates]
    outs = filtered_names(maps)
    counts = filter_series([folder / rows[d]["probabilities"] for d in dates], maps, outs, switch, cancel, progress)
    update_record(folder / RECORD, {d: {"filtered": out.name} for d, out in zip(dates, outs)})
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
    """Each pixel's most frequent class over `paths` (ties: the latest), no data where all are;
    written whole or not at all, with its QGIS style (.qml) beside it."""
    from ..classmap import stored_classes, style_class_map
    from ..files import atomic_outputs
    from ..style import paletted_qml

    srcs = [rasterio.open(p) for p in paths]
    try:
        classes = stored_classes(srcs[0])
        nodata = srcs[0].nodata
        with atomic_outputs(out, out.with_suffix(".qml")) as (tmp, qml):
            with rasterio.open(tmp, "w", **srcs[0].profile) as dst:
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
            style_class_map(tmp, classes)
            qml.write_text(paletted_qml(classes))
    finally:
        for s in srcs:
            s.close()


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
                _check_readable(ds, f"the raster of {d.date} ({d.path!r})")


def _check_readable(ds, role: str) -> None:
    """Its last pixel can be read: a file cut short (a copy or download stopped) is refused before any work."""
    from osgeo import gdal

    gdal.PushErrorHandler("CPLQuietErrorHandler")  # the one line below says it; GDAL's own lines would repeat it
    try:
        ds.read(window=Window(ds.width - 1, ds.height - 1, 1, 1))
    except rasterio.errors.RasterioIOError:
        raise InputError(f"{role} cannot be read to its end: the file is cut short or damaged; copy or download it "
                         f"again") from None
    finally:
        gdal.PopErrorHandler()


def _segment_date(runner, d: DateInput, reference, target: Path, cfg, probabilities: bool, k: int, n: int,
                  progress, cancel, info, warn, calibration) -> None:
    from osgeo import gdal

    from ..segmentation.infer import segment

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=_scratch_prefix(d.date)) as tmp:
        source = d.path
        with open_raster(reference, "grid") as ref, open_raster(d.path, f"raster of {d.date}") as ds:
            if not same_grid(ref, ds):  # onto the series' grid; outside the date's footprint: no data
                source = str(Path(tmp) / "on_grid.vrt")
                nodata = ds.nodata if ds.nodata is not None else (-9999 if ds.dtypes[0].startswith("float") else 0)
                gdal.Warp(source, os.fspath(d.path), format="VRT", dstSRS=ref.crs.to_wkt(), outputBounds=tuple(ref.bounds),
                          width=ref.width, height=ref.height, resampleAlg="bilinear", dstNodata=nodata)
        probs = Path(tmp) / "probabilities.tif" if probabilities else None
        segment(runner, source, target, dataclasses.replace(cfg, probability_dtype="uint8"), probabilities=probs,
                cancel=cancel, progress=None if progress is None else (lambda done, total: progress(k, n, done, total)),
                info=info, log=warn, calibration=calibration, overviews=False)  # uint8 straight from the tile loop
        if probs is not None:  # into place beside the map (same folder: a rename, not a copy)
            os.replace(probs, target.with_name(f"{d.date}_probabilities.tif"))


def to_uint8(src_path: Path, out: Path) -> None:
    """Float probabilities as uint8 (value = round(255 p), tagged STARS_PROBABILITY_SCALE=1/255); no
    data goes to the dataset mask, so every value 0..255 stays a probability. (A series writes them
    so from the tile loop, `SegmentConfig.probability_dtype`; this converts a float file made before.)"""
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


FIELDS = ["date", "source", "map", "probabilities", "seconds", "filtered", "source_size", "source_mtime_ns",
          "model_sha256", "grid", "options"]


def _read_record(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"the series record {os.fspath(path)!r} is damaged ({exc}); delete it (every date is then "
                         f"made again) or choose another output folder") from None
    if rows and "date" not in rows[0]:
        raise InputError(f"the series record {os.fspath(path)!r} has no date column: it is not a series.csv of "
                         f"`stars segment-series`; delete it or choose another output folder")
    return {r["date"]: r for r in rows if r.get("date")}


@contextmanager
def _locked(path: Path):
    """An exclusive lock on `path` + ".lock" (fcntl on POSIX, msvcrt on Windows): two series run into one
    folder at once update its record one after the other."""
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a+b") as f:
        if os.name == "nt":
            import msvcrt

            f.seek(0)
            while True:
                try:
                    msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after 10 s; keep waiting
                    continue
        else:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if os.name == "nt":
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def update_record(path: Path, changes: dict[str, dict], replace: bool = False) -> None:
    """Read, change and write series.csv under its lock (written to a temporary file, then renamed):
    `changes` rows replace (`replace`) or update those of their dates. A date made again makes every
    filtered map stale (the filter reads all dates), so `replace` clears them all."""
    with _locked(path):
        rows = _read_record(path)
        for date, change in changes.items():
            rows[date] = dict(change) if replace else {**rows.get(date, {"date": date}), **change}
        if replace:
            for row in rows.values():
                row["filtered"] = ""
        with atomic_path(path) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
                w.writeheader()
                for date in sorted(rows):
                    w.writerow(rows[date])
