"""From a labelled sample to accuracy and area estimates: every check the estimate relies on, then
`estimate.estimate` on the sample's error matrix and the strata's mapped areas.

Checked, each refusal one line naming the points or the classes: reference values outside the map's
class table; points outside the map or on its no-data; points whose map value is not the map's value
there (a sample of another map, or an edited one); a strata table that does not match the map
(recounted in one streamed pass). Unlabelled points are left out, counted and listed.
A from-to map's sample also reads the two dates' maps its change record names: each in its own CRS
(the points transformed to it), each refused if it changed since `stars change` (`_check_unchanged`);
`assess_inputs` lists them with the other inputs, so that no output overwrites one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import rasterio

from ..raster import crs_label, open_raster
from ..errors import Cancelled, InputError
from .estimate import Estimate, estimate
from ..classmap import map_classes
from .sample import count_strata, read_sample

M2_PER_HA = 10_000.0


@dataclass
class Assessment:
    """An estimate with what it was made from."""

    estimate: Estimate
    values: list[int]
    map_path: str
    sample_path: str
    labelled: int
    unlabelled: list[int] = field(default_factory=list)  # ids of the points left out
    dates: dict | None = None  # a from-to map's sample: {"first"/"second": (path, StehmanEstimate)}
    date_mapped: dict | None = None  # {"first"/"second": (K,) mapped ha of each class of that date's map}


def _shown(ids: list[int], limit: int = 10) -> str:
    return ", ".join(str(i) for i in ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def assess(map_path: str | os.PathLike, sample_path: str | os.PathLike, class_table=None,
           cancel: Callable[[], bool] | None = None, progress: Callable[[int, int], None] | None = None) -> Assessment:
    """Check the labelled sample against the map and estimate accuracy and class areas."""
    sample = read_sample(sample_path)
    values = sample.strata.values
    if not sample.ids:
        raise InputError(f"the sample layer of {os.fspath(sample_path)!r} holds no point: draw a sample with "
                         f"`stars sample` (or add points to it), then label them")
    notes = []
    with open_raster(map_path, "classified map") as ds:
        classes = map_classes(ds, class_table)
        if list(classes.values) != list(values):
            raise InputError(f"the sample's strata ({', '.join(map(str, values))}) are not the classes of "
                             f"{os.fspath(map_path)!r} ({', '.join(map(str, classes.values))}): it was drawn from "
                             f"another map")
        xy = _in_map_crs(sample, ds, sample_path, notes)
        on_map = _map_values(ds, xy)
    _refuse_duplicates(sample, xy, ds_name=os.fspath(sample_path))
    if sample.from_to is not None:
        sample.references = _transition_references(sample, sample_path)
    known = set(values)
    bad_ref = [i for i, r in zip(sample.ids, sample.references) if r is not None and r not in known]
    if bad_ref:
        raise InputError(f"points {_shown(bad_ref)} have reference values outside the class table "
                         f"({', '.join(f'{v} {n}' for v, n in zip(values, classes.names))}); correct them")
    outside = [i for i, v in zip(sample.ids, on_map) if v is None]
    if outside:
        raise InputError(f"points {_shown(outside)} lie outside {os.fspath(map_path)!r} or on its no-data; the sample "
                         f"was drawn from another map, or the points were moved")
    moved = [i for i, v, m in zip(sample.ids, on_map, sample.map_values) if m is not None and v != m]
    if moved:
        raise InputError(f"points {_shown(moved)} have a map_value that differs from the map there: the sample was "
                         f"drawn from another version of {os.fspath(map_path)!r}, or edited")
    map_values = [v if m is None else m for v, m in zip(on_map, sample.map_values)]
    if sample.added:
        notes.append(f"{len(sample.added)} point(s) added by hand (no id; named by feature id "
                     f"{_shown(sample.added)}): map value read from the map. Points added by hand must be drawn at "
                     f"random within their stratum for the estimates to stay unbiased")
    recount = count_strata(map_path, classes, cancel, progress)
    if recount.pixels != sample.strata.pixels:
        raise InputError(f"the sample's strata table (pixels {sample.strata.pixels}) does not match "
                         f"{os.fspath(map_path)!r} (pixels {recount.pixels}): the map changed after the sample "
                         f"was drawn; draw a new sample")
    index = {v: k for k, v in enumerate(values)}
    counts = np.zeros((len(values), len(values)), np.int64)
    unlabelled = []
    for i, m, r in zip(sample.ids, map_values, sample.references):
        if r is None:
            unlabelled.append(i)
        else:
            counts[index[m], index[r]] += 1
    if counts.sum() == 0:
        raise InputError(f"no point of {os.fspath(sample_path)!r} is labelled yet: give each point its reference "
                         f"class (field `reference`) first")
    empty = [classes.names[k] for k in range(len(values)) if counts[k].sum() == 0 and sample.strata.pixels[k] > 0]
    if empty:
        raise InputError(f"map class(es) {', '.join(empty)} have no labelled point in {os.fspath(sample_path)!r}: "
                         f"every estimate would leave out their part of the map and be biased; label (or draw "
                         f"again) at least 2 points of each")
    area = np.asarray(sample.strata.area_m2) / M2_PER_HA
    result = estimate(counts, sample.strata.pixels, _display_names(sample, classes), area=area)
    result.notes[:0] = notes
    _second_interval(result, counts, sample.strata.pixels, area, "", result.notes, np.eye(len(values), dtype=bool))
    if unlabelled:
        result.notes.append(f"{len(unlabelled)} unlabelled point(s) left out: {_shown(unlabelled)}")
    dates = _date_areas(sample, xy, map_values, result.notes) if sample.from_to is not None else None
    return Assessment(result, list(values), os.fspath(map_path), os.fspath(sample_path), int(counts.sum()),
                      unlabelled, dates, _date_mapped_ha(map_path, sample, dates, cancel) if dates else None)


def assess_inputs(map_path, sample_path, class_table=None) -> dict:
    """Every file `assess` reads, by what the user calls it: the map, the sample, the class table and,
    for a from-to map's sample, the two dates' maps its change record names (outputs must spare them)."""
    from ..classes import ClassTable
    from ..classmap import change_record

    inputs = {"classified map": map_path, "sample": sample_path,
              "class table": None if isinstance(class_table, ClassTable) else class_table}
    records = []
    try:
        with rasterio.open(map_path) as ds:
            records.append(change_record(ds) or {})
    except (rasterio.errors.RasterioError, OSError, ValueError):
        pass  # `assess` names what is wrong with the map
    try:
        records.append(read_sample(sample_path).design.get("change") or {})
    except (InputError, OSError, ValueError, KeyError):
        pass  # the same
    for key, which in (("first", "map_a"), ("second", "map_b")):
        inputs[f"map of the {key} date (read through the change record)"] = [r[which] for r in records if r.get(which)]
    return inputs


def _display_names(sample, classes) -> list[str]:
    """The map's class names as reports show them: a from-to map's unchanged classes say so
    ("forest (unchanged)"), lest they read like a date's class."""
    names = list(classes.names)
    change = sample.design.get("change") if sample.from_to is not None else None
    if change and change.get("unchanged", "keep") == "keep":
        dates = set(change["classes"]["names"]) if isinstance(change.get("classes"), dict) else set()
        names = [f"{n} (unchanged)" if n in dates else n for n in names]
    return names


def _date_values(sample, which: str, key: str, xy: np.ndarray, notes: list[str]) -> list[int | None]:
    """A date's map's values at the points, given in the CRS of the map the sample was drawn from
    (transformed to the date map's own CRS), once the map is checked to be what the change map was
    made from (its record in the change map: size, time, a hash of its class band)."""
    change = sample.design["change"]
    path = change[which]
    with open_raster(path, f"{key} date's map") as ds:
        _check_unchanged(ds, (change.get("inputs") or {}).get(which), key, path, notes)
        theirs = sample.design.get("crs")
        if theirs and ds.crs is not None:
            from rasterio.crs import CRS

            if CRS.from_wkt(theirs) != ds.crs:
                xy = _transformed(xy, CRS.from_wkt(theirs), ds.crs)
                notes.append(f"the map of the {key} date is in {crs_label(ds.crs)}, the change map in "
                             f"{crs_label(CRS.from_wkt(theirs))}: the points were transformed to it")
        return _map_values(ds, xy)


def _check_unchanged(ds, record: dict | None, key: str, path: str, notes: list[str]) -> None:
    """Refuse a date's map that changed since `stars change` made the from-to map from it."""
    from ..change.changemap import band_record

    if not record:
        notes.append(f"the change map records nothing of its {key} date's map (made by an older STARS): "
                     f"{os.path.basename(path)} could not be checked against what the change map was made from")
        return
    now = band_record(ds) if os.path.getsize(path) == record.get("size") else {"size": os.path.getsize(path)}
    if now.get("band_blake2b") != record.get("band_blake2b"):
        raise InputError(f"the map of the {key} date {path!r} changed after `stars change` made the change map from "
                         f"it (made from {record.get('size')} bytes of {record.get('mtime')}): rerun `stars change` "
                         f"and draw a new sample, or restore the map")


def _transformed(xy: np.ndarray, src, dst) -> np.ndarray:
    """Points (P, 2) from CRS `src` to `dst`; points without coordinates (NaN) stay so."""
    from rasterio.warp import transform

    ok = np.isfinite(xy).all(axis=1)
    out = np.full_like(xy, np.nan)
    if ok.any():
        xs, ys = transform(src, dst, xy[ok, 0].tolist(), xy[ok, 1].tolist())
        out[ok] = np.column_stack([xs, ys])
    return out


def _date_mapped_ha(map_path, sample, dates: dict, cancel=None) -> dict:
    """The mapped hectares of each class of each date's map over the from-to map's classified
    pixels (the area the per-date estimates share), the date map read on its grid (streamed)."""
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    from ..classes import ClassTable
    from ..raster import aligned
    from ..raster import row_areas
    from .sample import STRIP

    classes = ClassTable.from_dict(sample.design["change"]["classes"])
    lut, out = classes.value_index(), {}
    for key, (path, _) in dates.items():
        area = np.zeros(len(classes))
        with open_raster(map_path, "classified map") as ch, open_raster(path, f"{key} date's map") as src:
            date = aligned(ch, src, Resampling.nearest, "change map", f"map of the {key} date")
            for row in range(0, ch.height, STRIP):
                if cancel is not None and cancel():
                    raise Cancelled("cancelled; nothing was written")
                w = Window(0, row, ch.width, min(STRIP, ch.height - row))
                valid = ch.read(1, window=w) != (ch.nodata if ch.nodata is not None else -1)
                v = date.read(1, window=w).astype(np.int64)
                idx = np.where(valid & (v >= 0) & (v < len(lut)), lut[np.clip(v, 0, len(lut) - 1)], -1)
                if date.nodata is not None:
                    idx[v == int(date.nodata)] = -1
                per_row = row_areas(ch, np.arange(row, row + w.height))[:, None]
                area += np.bincount(idx[idx >= 0], (np.broadcast_to(per_row, idx.shape))[idx >= 0], len(classes))
        out[key] = (area / M2_PER_HA).tolist()
    return out


def _transition_references(sample, sample_path) -> list[int | None]:
    """Each labelled point's reference as a value of the from-to map's legend, from its from and to
    classes; a point with only one of them is refused."""
    dates, legend = _legend(sample.design["change"])
    index = {v: k for k, v in enumerate(dates.values)}
    half = [i for i, (a, b) in zip(sample.ids, sample.from_to) if (a is None) != (b is None)]
    if half:
        raise InputError(f"points {_shown(half)} of {os.fspath(sample_path)!r} have a reference for one date only: "
                         f"give both reference_from and reference_to (the same class where nothing changed)")
    unknown = [i for i, (a, b) in zip(sample.ids, sample.from_to) if a is not None and (a not in index or b not in index)]
    if unknown:
        raise InputError(f"points {_shown(unknown)} have from/to references outside the maps' classes "
                         f"({', '.join(f'{v} {n}' for v, n in zip(dates.values, dates.names))}); correct them")
    return [None if a is None else legend.value(index[a], index[b]) for a, b in sample.from_to]


def _legend(change: dict):
    """The dates' class table and the from-to map's legend, as the change map recorded them."""
    from ..change.transitions import Group, Transitions
    from ..classes import ClassTable

    dates = ClassTable.from_dict(change["classes"])
    return dates, Transitions(dates, change.get("unchanged", "keep"), [Group(*g) for g in change.get("groups", [])])


def _date_areas(sample, xy: np.ndarray, strata_values: list[int], notes: list[str]) -> dict | None:
    """Class areas (and accuracy) of each date's map from a sample stratified by the from-to map:
    Stehman's (2014) estimators, the strata (transitions) not being the date map's classes."""
    from .stehman import stehman_estimate

    change = sample.design["change"]
    dates, legend = _legend(change)
    labelled = [k for k, (a, _) in enumerate(sample.from_to) if a is not None]
    pixels = {v: px for v, px in zip(sample.strata.values, sample.strata.pixels) if px > 0}
    area = {v: a / M2_PER_HA for v, a, px in zip(sample.strata.values, sample.strata.area_m2, sample.strata.pixels)
            if px > 0}  # the weights; the sampling fractions n_h / N_h are taken on the pixels
    out = {}
    for key, which, side in (("first", "map_a", 0), ("second", "map_b", 1)):
        path = change.get(which)
        if not path or not os.path.isfile(path):
            notes.append(f"class areas of the {key} date left out: its map {path!r} is not where the change map "
                         f"was made from")
            continue
        on_map = _date_values(sample, which, key, xy[labelled], notes)
        keep = [j for j, v in enumerate(on_map) if v is not None]
        strata = [strata_values[labelled[j]] for j in keep]
        refs = [sample.from_to[labelled[j]][side] for j in keep]
        est = stehman_estimate(strata, [on_map[j] for j in keep], refs, pixels, list(dates.values), stratum_area=area)
        est.names = list(dates.names)
        counts = np.zeros((len(pixels), len(dates.values)), np.int64)  # (strata, this date's classes)
        own = np.zeros(counts.shape, bool)  # the strata mapped as each class at this date
        row, col = {h: i for i, h in enumerate(pixels)}, {v: i for i, v in enumerate(dates.values)}
        for h, r in zip(strata, refs):
            counts[row[h], col[r]] += 1
        for i in range(len(dates.values)):
            for j in range(len(dates.values)):
                if legend.value(i, j) in row:
                    own[row[legend.value(i, j)], (i, j)[side]] = True
        _second_interval(est, counts, list(pixels.values()), np.array(list(area.values())), f" at the {key} date",
                         notes, own)
        out[key] = (path, est)
    return out or None


def _second_interval(est, counts: np.ndarray, pixels, area: np.ndarray, when: str, notes: list[str],
                     own: np.ndarray) -> None:
    """The bootstrap interval of each class's area beside the normal one (intervals.py), and a note
    naming the classes whose normal interval is not to be trusted (`own`: strata x classes, True
    where the stratum is mapped as the class)."""
    from .intervals import bootstrap_area_intervals, normal_doubts

    total = float(np.sum(area))
    est.area_share_boot95 = bootstrap_area_intervals(counts, pixels, area) / total
    est.normal_doubt = normal_doubts(counts, pixels, own)
    doubted = [f"{name} ({why})" for name, why in zip(est.names, est.normal_doubt) if why]
    if doubted:
        notes.append(f"class areas{when} whose normal interval (± 1.96 SE) is not to be trusted: " + "; ".join(doubted)
                     + ". Such a class can hide unseen in large strata, and its normal interval then comes out "
                     "too narrow; the bootstrap interval beside it (points resampled within strata, one more "
                     "point of the class where a point weighs most) says how much of it the sample cannot rule out")


def _in_map_crs(sample, ds, sample_path, notes: list[str]) -> np.ndarray:
    """The points in the map's CRS: a sample saved in another CRS (e.g. reprojected on export) is
    transformed back, and a note says so."""
    if sample.crs_wkt is None or ds.crs is None:
        return sample.xy
    from rasterio.crs import CRS

    theirs = CRS.from_wkt(sample.crs_wkt)
    if theirs == ds.crs:
        return sample.xy
    out = _transformed(sample.xy, theirs, ds.crs)
    notes.append(f"the sample is in {crs_label(theirs)}, the map in {crs_label(ds.crs)}: points were transformed "
                 f"to the map's CRS")
    return out


def _refuse_duplicates(sample, xy: np.ndarray, ds_name: str) -> None:
    """Two points with one id, or two points in one place, break the sample design (a pixel counted twice)."""
    from collections import Counter

    given = Counter(i for k, i in enumerate(sample.ids) if sample.map_values[k] is not None or i not in sample.added)
    twice = sorted(i for i, k in given.items() if k > 1)
    if twice:
        raise InputError(f"{ds_name!r}: the id(s) {_shown(twice)} appear on more than one point; a point copied "
                         f"is counted twice in the estimates: delete the copies")
    places: dict[tuple[float, float], int] = {}
    same = []
    for i, (x, y) in zip(sample.ids, xy):
        if np.isfinite(x):
            key = (round(float(x), 6), round(float(y), 6))
            if key in places:
                same.append(f"{places[key]} and {i}")
            places.setdefault(key, i)
    if same:
        raise InputError(f"{ds_name!r}: points {', '.join(same[:10])} lie in the same place; a duplicated point is "
                         f"counted twice in the estimates: delete the copies")


def _map_values(ds, xy: np.ndarray) -> list[int | None]:
    """The map's value at each point (None outside the map or on no-data)."""
    out: list[int | None] = []
    inv = ~ds.transform
    nodata = ds.nodata
    for x, y in xy:
        if not np.isfinite(x):
            out.append(None)
            continue
        col, row = inv * (x, y)
        r, c = int(np.floor(row)), int(np.floor(col))
        if not (0 <= r < ds.height and 0 <= c < ds.width):
            out.append(None)
            continue
        v = int(ds.read(1, window=((r, r + 1), (c, c + 1)))[0, 0])
        out.append(None if nodata is not None and v == int(nodata) else v)
    return out
