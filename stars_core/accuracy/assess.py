"""From a labelled sample to accuracy and area estimates: every check the estimate relies on, then
`estimate.estimate` on the sample's error matrix and the strata's mapped areas.

Checked, each refusal one line naming the points or the classes: reference values outside the map's
class table; points outside the map or on its no-data; points whose map value is not the map's value
there (a sample of another map, or an edited one); a strata table that does not match the map
(recounted in one streamed pass). Unlabelled points are left out, counted and listed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..raster import open_raster
from ..runtime import InputError
from .estimate import Estimate, estimate
from .sample import count_strata, map_classes, read_sample

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


def _shown(ids: list[int], limit: int = 10) -> str:
    return ", ".join(str(i) for i in ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def assess(map_path: str | os.PathLike, sample_path: str | os.PathLike, class_table=None,
           cancel: Callable[[], bool] | None = None, progress: Callable[[int, int], None] | None = None) -> Assessment:
    """Check the labelled sample against the map and estimate accuracy and class areas."""
    sample = read_sample(sample_path)
    values = sample.strata.values
    with open_raster(map_path, "classified map") as ds:
        classes = map_classes(ds, class_table)
        if list(classes.values) != list(values):
            raise InputError(f"the sample's strata ({', '.join(map(str, values))}) are not the classes of "
                             f"{os.fspath(map_path)!r} ({', '.join(map(str, classes.values))}): it was drawn from "
                             f"another map")
        on_map = _map_values(ds, sample.xy)
    known = set(values)
    bad_ref = [i for i, r in zip(sample.ids, sample.references) if r is not None and r not in known]
    if bad_ref:
        raise InputError(f"points {_shown(bad_ref)} have reference values outside the class table "
                         f"({', '.join(f'{v} {n}' for v, n in zip(values, classes.names))}); correct them")
    outside = [i for i, v in zip(sample.ids, on_map) if v is None]
    if outside:
        raise InputError(f"points {_shown(outside)} lie outside {os.fspath(map_path)!r} or on its no-data; the sample "
                         f"was drawn from another map, or the points were moved")
    moved = [i for i, v, m in zip(sample.ids, on_map, sample.map_values) if v is not None and v != m]
    if moved:
        raise InputError(f"points {_shown(moved)} have a map_value that differs from the map there: the sample was "
                         f"drawn from another version of {os.fspath(map_path)!r}, or edited")
    recount = count_strata(map_path, classes, cancel, progress)
    if recount.pixels != sample.strata.pixels:
        raise InputError(f"the sample's strata table (pixels {sample.strata.pixels}) does not match "
                         f"{os.fspath(map_path)!r} (pixels {recount.pixels}): the map changed after the sample "
                         f"was drawn; draw a new sample")
    index = {v: k for k, v in enumerate(values)}
    counts = np.zeros((len(values), len(values)), np.int64)
    unlabelled = []
    for i, m, r in zip(sample.ids, sample.map_values, sample.references):
        if r is None:
            unlabelled.append(i)
        else:
            counts[index[m], index[r]] += 1
    if counts.sum() == 0:
        raise InputError(f"no point of {os.fspath(sample_path)!r} is labelled yet: give each point its reference "
                         f"class (field `reference`) first")
    result = estimate(counts, np.asarray(sample.strata.area_m2) / M2_PER_HA, list(classes.names))
    if unlabelled:
        result.notes.append(f"{len(unlabelled)} unlabelled point(s) left out: {_shown(unlabelled)}")
    return Assessment(result, list(values), os.fspath(map_path), os.fspath(sample_path), int(counts.sum()),
                      unlabelled)


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
