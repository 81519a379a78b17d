"""Temporal consistency for a series of SAR-only maps: a hidden Markov model over each pixel's class
sequence, decoded with Viterbi's algorithm.

SAR-only maps flicker between dates (speckle, wet soil, crop cycles), and every flicker is a false
change. Each pixel's true class is modelled as a Markov chain that stays in its class from one date
to the next with probability 1 - `switch` and moves to any other class with probability
switch / (K - 1); a date's class probabilities (`segment-series --probabilities`) are its evidence.
The most probable class sequence given every date (Viterbi) keeps a change that the evidence
supports over the following dates and drops a one-date excursion that it does not: a real change
persists, flicker does not. The price is said plainly: a real change that lasts a single date (a
flood that drains before the next pass) is dropped too when its evidence is weaker than the switch
prior; a smaller `switch` removes more flicker and more brief events. Abercrombie and Friedl (2016,
IEEE TGRS 54:703-713) apply the same model to MODIS land-cover time series.

Streamed in windows of whole block rows, decoded on every thread the process may use; memory is
threads x window x dates x classes, flat in the raster size.
"""
from __future__ import annotations

import itertools
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from ..errors import Cancelled, InputError
from ..files import atomic_outputs, check_outputs
from ..tiling import top_class

STRIP = 256  # rows per window: the block rows the series writes (`infer.BLOCK`)
WINDOW_BYTES = 96 << 20  # a window's float evidence (dates x classes x pixels), at most
FLOOR = 0.5 / 255  # a uint8 probability of 0 is "below 1/255", not impossible


def viterbi(probabilities: np.ndarray, switch: float) -> np.ndarray:
    """The most probable class index sequence of each pixel: `probabilities` (T, K, P) of T dates,
    K classes and P pixels -> (T, P) class indices."""
    return decode(np.log(np.clip(probabilities, FLOOR, 1.0)), switch)


def decode(emit: np.ndarray, switch: float) -> np.ndarray:
    """Viterbi on log evidence `emit` (T, K, P) -> (T, P) class indices. The switch prior is the same
    for every pair of classes, so a class's best predecessor is itself or the best other class.
    Where staying is at least as likely as moving to a given class (switch <= (K - 1) / K, every
    useful prior), the best class always keeps itself, so every other class weighs staying against
    the best previous score alone: four in-place operations a class and date. Ties go to the
    higher class index, as a stable sort of the scores has them; a class keeps itself on a tie."""
    T, K, P = emit.shape
    stay, move = np.log1p(-switch), np.log(switch / (K - 1))
    if move > stay:
        return _decode_moving(emit, stay, move)
    score = emit[0].astype(np.result_type(emit, stay))  # (K, P), a copy
    moved = np.empty((T, K, P), bool)  # class j at date t came from the best class of date t - 1
    best_of = np.empty((T, P), np.int8 if K < 128 else np.int16)
    kept = np.empty(P, score.dtype)
    for t in range(1, T):
        best = top_class(score, best_of[t], ties_to_higher=True)[1]
        other = best + move
        for j in range(K):
            np.add(score[j], stay, out=kept)
            np.greater(other, kept, out=moved[t, j])
            np.maximum(kept, other, out=score[j])
            score[j] += emit[t, j]
    path = np.empty((T, P), np.int64)
    path[-1] = np.argmax(score, axis=0)
    for t in range(T - 1, 0, -1):
        came = np.take_along_axis(moved[t], path[t][None], 0)[0]
        path[t - 1] = np.where(came, best_of[t], path[t])
    return path


def _decode_moving(emit: np.ndarray, stay: float, move: float) -> np.ndarray:
    """`decode` where moving to a given class is likelier than staying (switch > (K - 1) / K): a
    class's best predecessor is then the best other class, from the best and second-best scores."""
    T, K, P = emit.shape
    score = emit[0].copy()  # (K, P)
    back = np.empty((T, K, P), np.int8 if K < 128 else np.int16)
    for t in range(1, T):
        first, second, i1, i2 = _top_two(score)
        from_first, from_second = first + move, second + move
        new = np.empty(score.shape, np.result_type(score, stay))
        for j in range(K):
            is_first = i1 == j
            other = np.where(is_first, from_second, from_first)
            kept = score[j] + stay
            take = other > kept
            back[t, j] = np.where(take, np.where(is_first, i2, i1), j)
            new[j] = np.where(take, other, kept) + emit[t, j]
        score = new
    path = np.empty((T, P), np.int64)
    path[-1] = np.argmax(score, axis=0)
    for t in range(T - 1, 0, -1):
        path[t - 1] = np.take_along_axis(back[t], path[t][None], 0)[0]
    return path


def _top_two(score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(K, P) -> the best and second-best values and their class indices, a class at a time
    (contiguous rows; ties to the higher index)."""
    first, second = score[0].copy(), np.full_like(score[0], -np.inf)
    i1, i2 = np.zeros(score.shape[1], np.int16), np.zeros(score.shape[1], np.int16)
    for k in range(1, score.shape[0]):
        s = score[k]
        above_first, above_second = s >= first, s >= second
        second = np.where(above_first, first, np.where(above_second, s, second))
        i2 = np.where(above_first, i1, np.where(above_second, k, i2))
        first = np.where(above_first, s, first)
        i1 = np.where(above_first, k, i1)
    return first, second, i1, i2


def check_switch(switch: float) -> None:
    if not 0 < switch < 1:
        raise InputError(f"the switch probability must be between 0 and 1 (e.g. 0.02), got {switch:g}")


def filter_series(probabilities: Sequence[str | os.PathLike], maps: Sequence[str | os.PathLike],
                  outputs: Sequence[str | os.PathLike], switch: float = 0.02,
                  cancel: Callable[[], bool] | None = None,
                  progress: Callable[[float], None] | None = None) -> dict:
    """Write `outputs` (one class map per date, each with its QGIS style .qml): the Viterbi class
    sequence of every pixel from the per-date `probabilities` (uint8 x 255 or float), with the class
    values, legend and no data of the per-date `maps`. Every input is opened and every output place
    checked before the first pixel. Returns {"changed": pixels whose class the filter changed,
    "pixels": valid}."""
    from ..classmap import stored_classes, style_class_map
    from ..style import paletted_qml

    check_switch(switch)
    if not (len(probabilities) == len(maps) == len(outputs)) or len(maps) < 2:
        raise InputError("give at least 2 dates, each with its probabilities, map and output")
    qmls = [Path(o).with_suffix(".qml") for o in outputs]
    check_outputs({**{f"probabilities {os.fspath(p)!r}": p for p in probabilities},
                   **{f"map {os.fspath(m)!r}": m for m in maps}},
                  {**{f"filtered map {k + 1}": o for k, o in enumerate(outputs)},
                   **{f"style of filtered map {k + 1}": q for k, q in enumerate(qmls)}})
    with ExitStack() as opened:
        srcs = [opened.enter_context(_open_checked(p, "probabilities")) for p in probabilities]
        map_srcs = [opened.enter_context(_open_checked(m, "map")) for m in maps]
        classes = stored_classes(map_srcs[0])
        if classes is None or any(s.count != len(classes) for s in srcs):
            raise InputError("the probabilities must have one band per class of the maps' class table (made by "
                             "`stars segment-series --probabilities`)")
        scale = 255.0 if srcs[0].dtypes[0] == "uint8" else 1.0
        counts = {"changed": 0, "pixels": 0}
        profile = dict(map_srcs[0].profile)
        with atomic_outputs(*outputs, *qmls) as temps:
            dsts = [rasterio.open(t, "w", **profile) for t in temps[:len(outputs)]]
            try:
                _filter_windows([*probabilities, *maps], dsts, np.array(classes.values), scale, switch, counts,
                                cancel, progress)
            finally:
                for d in dsts:
                    d.close()
            _in_threads(lambda t: style_class_map(t, classes, STARS_TEMPORAL_FILTER=f"hmm switch={switch:g}"),
                        temps[:len(outputs)])
            for q in temps[len(outputs):]:
                q.write_text(paletted_qml(classes))
        return counts


def _filter_windows(inputs: list, dsts, values: np.ndarray, scale: float, switch: float, counts: dict,
                    cancel, progress) -> None:
    """The filter over every window (`_windows`), decoded by the process's threads (numpy and GDAL
    let go of the GIL), each with its own handles of the `inputs` (the probabilities, then the maps),
    and written here in order; at most two windows a thread wait in memory."""
    from concurrent.futures import ThreadPoolExecutor

    from .. import threads
    from ..raster import ThreadHandles

    T, K = len(dsts), len(values)
    height, width = dsts[0].height, dsts[0].width
    handles = ThreadHandles(lambda stack: [stack.enter_context(rasterio.open(p)) for p in inputs])
    workers = threads.in_force()
    windows = iter(_windows(height, width, T * K))

    def work(w: Window):
        opened = handles.get()
        return _filter_window(w, opened[:T], opened[T:], values, scale, switch)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stars-filter")
    pending = [(w, pool.submit(work, w)) for w in itertools.islice(windows, 2 * workers)]
    try:
        while pending:
            if cancel is not None and cancel():
                raise Cancelled("temporal filter cancelled; no output was written")
            w, future = pending.pop(0)
            try:
                out, changed, valid = future.result()
            except rasterio.errors.RasterioIOError as exc:
                raise InputError(f"the series could not be read from row {w.row_off} on (a damaged file? GDAL: "
                                 f"{str(exc).strip()}); make its maps again") from None
            pending += [(n, pool.submit(work, n)) for n in itertools.islice(windows, 1)]
            for k, d in enumerate(dsts):
                d.write(out[k], 1, window=w)
            counts["changed"] += changed
            counts["pixels"] += valid * T
            if progress is not None:
                progress(min(1.0, (w.row_off + w.height * (w.col_off + w.width) / width) / height))
    finally:
        for _, future in pending:
            future.cancel()
        try:
            handles.close_in(pool, workers)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _windows(height: int, width: int, bands: int) -> list[Window]:
    """Windows of whole block rows (every 256-row block read and inflated once), as wide as keeps a
    window's float evidence of all `bands` (dates x classes) within WINDOW_BYTES."""
    cols = max(STRIP, WINDOW_BYTES // (bands * STRIP * 4) // STRIP * STRIP)
    return [Window(col, row, min(cols, width - col), min(STRIP, height - row))
            for row in range(0, height, STRIP) for col in range(0, width, cols)]


def _in_threads(job: Callable, items: Sequence) -> None:
    """`job` on every item on the process's threads (each item its own file; GDAL's overviews let go
    of the GIL), the first error raised."""
    from concurrent.futures import ThreadPoolExecutor

    from .. import threads

    with ThreadPoolExecutor(max_workers=threads.in_force()) as pool:
        for future in [pool.submit(job, item) for item in items]:
            future.result()


def _open_checked(path, what: str):
    """A series input opened and read at its last pixel: a damaged or cut-short file is named before any work."""
    from ..raster import open_raster

    from osgeo import gdal

    ds = open_raster(path, what)
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # the one line below says it
    try:
        ds.read(window=Window(ds.width - 1, ds.height - 1, 1, 1))
    except rasterio.errors.RasterioIOError:
        ds.close()
        raise InputError(f"the {what} {os.fspath(path)!r} cannot be read to its end: the file is cut short or "
                         f"damaged; make it again (stars segment-series --probabilities --no-skip-existing)") from None
    finally:
        gdal.PopErrorHandler()
    return ds


def _filter_window(w: Window, srcs, map_srcs, values: np.ndarray, scale: float,
                   switch: float) -> tuple[np.ndarray, int, int]:
    """One window's filtered maps (T, h, w), the pixels the filter changed and the valid pixels."""
    raw = np.stack([m.read(1, window=w) for m in map_srcs])  # (T, h, w)
    nodata = map_srcs[0].nodata
    valid = np.ones(raw.shape[1:], bool) if nodata is None else (raw != nodata).all(axis=0)
    if scale == 255.0:  # uint8 probabilities: their log evidence looked up, value for value the same
        emit = _LOG_UINT8[np.stack([s.read(window=w) for s in srcs])]  # (T, K, h, w)
    else:
        emit = np.log(np.clip(np.stack([s.read(window=w).astype(np.float32) / scale for s in srcs]), FLOOR, 1.0))
    T, K = emit.shape[:2]
    cols = slice(None) if valid.all() else valid.ravel()  # every pixel valid: a view, no copy
    flat = emit.reshape(T, K, -1)[:, :, cols]
    out, changed = raw.copy(), 0
    if flat.shape[2]:
        path = values[decode(flat, switch)]  # (T, P)
        out.reshape(T, -1)[:, cols] = path
        changed = int((path != raw.reshape(T, -1)[:, cols]).sum())
    return out, changed, int(valid.sum())


# log evidence of each uint8 probability q: log(clip(q / 255, FLOOR, 1)) computed as the float path does
_LOG_UINT8 = np.log(np.clip(np.arange(256, dtype=np.uint8).astype(np.float32) / 255.0, FLOOR, 1.0))


def filtered_names(maps: Sequence[str | os.PathLike]) -> list[Path]:
    """`<date>_filtered.tif` beside each `<date>.tif`."""
    return [Path(m).with_name(Path(m).stem + "_filtered.tif") for m in maps]
