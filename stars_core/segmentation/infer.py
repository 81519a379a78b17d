"""Sliding-window segmentation of a raster of any size, from one modality (or both).

The input is read tile by tile (`tiling.TileGrid`), normalised with the statistics stored in the
model file, run through the model in batches while reader threads prepare the next batch (each
with its own GDAL handles), and blended with raised-cosine weights into a buffer that holds only
the rows of tiles in flight.
Rows are written as soon as no later tile touches them, in whole GeoTIFF block rows, so memory
depends on the raster width and the tile size, never on the raster height.

Outputs (GeoTIFF, same CRS, transform and size as the input):
    classes: class values of the model's class table (uint8, no-data 255; uint16 when a value
        does not fit), tiled, DEFLATE, overviews (mode), colour table, category names and a QGIS
        style beside it (.qml) holding the legend;
    confidence (optional): probability of the chosen class, float32, no-data NaN;
    probabilities (optional): one band per class, named after it: float32, no-data NaN, or with
        `SegmentConfig.probability_dtype` "uint8" round(255 p) straight from the tile loop (tagged
        STARS_PROBABILITY_SCALE=1/255, no data in the dataset mask: every value 0..255 stays a probability);
    uncertainty (optional): two float32 bands from the same blended probabilities (no second run):
        normalised entropy (0: certain, 1: every class equally likely) and margin (top-1 minus
        top-2 probability: small where the model hesitates between two classes).
Everything is written under temporary names and renamed at the end; an error or a cancel leaves
no output behind.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..bands import BandStats, normalise
from ..classes import ClassTable
from ..classmap import overview_factors, style_class_map
from ..config import SegmentConfig
from ..files import atomic_outputs, check_outputs
from ..raster import (ThreadHandles, aligned, band_names, build_overviews, centre_latitude, crs_label, geometries_in,
                     metres_per_pixel, open_raster, pixel_area, pixel_size, read_polygons, valid_mask, window_of)
from .. import threads
from ..errors import Cancelled, InputError
from ..style import grey_qml, paletted_qml
from ..tiling import Tile, TileGrid, pad_reflect, top_class

BLOCK = 256  # GeoTIFF block size; rows are written in whole block rows
PIXEL_SIZE_TOLERANCE = 1.5  # warn when input and training pixel sizes differ by more than this factor


@dataclass
class SegmentResult:
    path: Path
    confidence: Path | None
    probabilities: Path | None
    width: int
    height: int
    tiles: int
    seconds: float
    branch: str
    device: str
    class_pixels: dict[str, int]
    nodata_pixels: int
    warnings: list[str] = field(default_factory=list)
    uncertainty: Path | None = None
    runtime: str = "torch"  # torch, onnx, int8 (an export of the .stars file) or onnx-file (a .onnx given)
    runtime_note: str = ""  # which runtime ran and its measured agreement with eager PyTorch

    @property
    def megapixels_per_second(self) -> float:
        return self.width * self.height / 1e6 / max(self.seconds, 1e-9)


# -- inputs -------------------------------------------------------------------------------------
def band_order(ds, stats: BandStats, role: str, path: str, log: Callable[[str], None]) -> list[int]:
    """Band indexes (1-based) of `ds` in the model's training order. A different band count is an
    error; band descriptions that are the training names in another order are reordered, and other
    names (HH, HV for a VV, VH model) are said to be taken in their order."""
    expected = list(stats.names)
    if ds.count != len(expected):
        raise InputError(
            f"{role} raster {path!r} has {ds.count} band(s) but the model was trained on {len(expected)} "
            f"({', '.join(expected)}); give a raster with exactly these bands in this order "
            f"(gdalbuildvrt -separate stacks single-band files)"
        )
    names = band_names(ds)
    if names != expected and sorted(names) == sorted(expected):
        log(f"{role} bands are named {', '.join(names)}; reordering them to the training order "
            f"{', '.join(expected)}")
        return [names.index(n) + 1 for n in expected]
    if names != expected and any(ds.descriptions):
        log(f"{role} bands are named {', '.join(names)}, the model was trained on {', '.join(expected)}: they are "
            f"used in their order as {', '.join(expected)}; check that this is what they hold")
    return list(range(1, ds.count + 1))


class _Inputs:
    """The rasters a run reads, on one grid, with the model's band order and statistics.

    GDAL handles must not be shared between threads: with `reopen`, every reader thread opens its
    own handles of the same rasters on its first tile (`reopen(stack)` -> (primary, secondary)),
    closed by `close`; without it, the handles given are used by one reader thread at a time."""

    def __init__(self, primary, secondary, order: tuple[list[int], list[int] | None],
                 stats: tuple[BandStats, BandStats | None], clip: list[dict] | None = None,
                 prepare: Callable = normalise, reopen: Callable[[ExitStack], tuple] | None = None):
        self.order, self.stats, self.clip, self.prepare = order, stats, clip, prepare
        self._given = (primary, secondary)
        self.handles = None if reopen is None else ThreadHandles(reopen)

    def several_readers(self, several: bool) -> None:
        """With one reader thread, the handles given serve it (nothing is reopened)."""
        if not several:
            self.handles = None

    def _datasets(self) -> tuple:
        return self._given if self.handles is None else self.handles.get()

    def close_own(self) -> None:
        """Close the handles this thread opened."""
        if self.handles is not None:
            self.handles.close_own()

    def close_in(self, pool: ThreadPoolExecutor, threads: int) -> None:
        """Have every one of the pool's `threads` reader threads close its own handles."""
        if self.handles is not None:
            self.handles.close_in(pool, threads)

    def read(self, tile: Tile):
        """Padded model inputs of one tile (`prepare`: normalised, or raw for a graph that normalises
        itself) and the validity masks of its pixels."""
        primary, secondary = self._datasets()
        window = Window(tile.col, tile.row, tile.width, tile.height)
        x = _read_tile(primary, self.order[0], window)
        v = valid_mask(primary, x, window)
        if self.clip:  # pixels outside the clip polygons are no data
            v &= geometry_mask(self.clip, (tile.height, tile.width), primary.window_transform(window), invert=True)
        x = pad_reflect(self.prepare(x, v, self.stats[0]), tile.pad_bottom, tile.pad_right)
        if secondary is None:
            return x, None, v, None
        x2 = _read_tile(secondary, self.order[1], window)
        v2 = valid_mask(secondary, x2, window)
        return x, pad_reflect(self.prepare(x2, v2, self.stats[1]), tile.pad_bottom, tile.pad_right), v, v2


def _read_tile(ds, bands: list[int], window: Window) -> np.ndarray:
    """The tile's pixels; a raster cut short or damaged is named in one line (GDAL says which file)."""
    try:
        return ds.read(bands, window=window)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"the raster {ds.name!r} cannot be read from row {int(window.row_off)}, column "
                         f"{int(window.col_off)} on (cut short or damaged? GDAL: {str(exc).strip()}); copy it "
                         f"again or repair it") from None


def _stack(reads: list[tuple]):
    """Stacked inputs (B, C, h, w) of several tiles read by `_Inputs.read`, and their validity masks."""
    x1, x2, v1, v2 = zip(*reads)
    return np.stack(x1), None if x2[0] is None else np.stack(x2), v1, v2


# -- the run ------------------------------------------------------------------------------------
def segment(
    model,
    input: str | os.PathLike,
    output: str | os.PathLike,
    cfg: SegmentConfig = SegmentConfig(),
    *,
    with_m2: str | os.PathLike | None = None,
    confidence: str | os.PathLike | None = None,
    probabilities: str | os.PathLike | None = None,
    uncertainty: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
    clip: tuple[str, list[dict]] | None = None,
    info: Callable[[str], None] | None = None,
    calibration: str | os.PathLike | None = None,
    overviews: bool = True,
) -> SegmentResult:
    """Segment `input` (modality `cfg.modality` of the model; with `with_m2`, modality 1 plus the
    optical raster through the fused branch) into a classified GeoTIFF at `output`. `model` is a
    model file (`.stars`, run with PyTorch; `.onnx`, run with ONNX Runtime, no PyTorch needed), a
    loaded `checkpoint.LoadedModel` or an `onnx_model.OnnxModel`.
    `clip` (CRS WKT, GeoJSON polygons) leaves every pixel outside the polygons as no data.
    `cfg.runtime` picks what runs a .stars file on the CPU (`engines.auto`); an int8 export is
    calibrated on `calibration` (default: `input`). `log` gets warnings, `info` what is being done.
    `overviews=False` leaves the confidence, probability and uncertainty rasters without overviews
    (for files that are only an intermediate step; the class map always has them)."""
    messages: list[str] = []

    def note(msg: str) -> None:
        messages.append(msg)
        if log is not None:
            log(msg)

    start = time.perf_counter()
    qml = Path(output).with_suffix(".qml")
    check_outputs({"input raster": input, "optical raster": with_m2,
                   "model file": model if isinstance(model, (str, os.PathLike)) else getattr(model, "path", None)},
                  {"output": output, "confidence output": confidence, "probabilities output": probabilities,
                   "uncertainty output": uncertainty,
                   "style file beside the output": qml})
    loaded, cfg = _open_model(model, cfg, note)
    branch = _check_request(loaded, cfg, with_m2)
    with ExitStack() as opened:
        src, work, inputs = _open_inputs(opened, loaded, cfg, input, with_m2, clip, note)
        if cfg.mmu is not None:  # refused before the network runs, not after
            from ..config import mmu_pixels
            from ..product.mmu import check_unit_fits

            check_unit_fits(mmu_pixels(cfg.mmu, pixel_area(src)), src.width * src.height, cfg.mmu, pixel_area(src))
        # after the inputs are checked: a bad raster is refused before an export is made for it
        loaded, runtime, runtime_note = _runtime(loaded, cfg, branch, calibration or input,
                                                 info or (lambda m: None), note)
        readers = cfg.readers_for(loaded.device_type, threads.available_cores(), getattr(loaded, "parallel", None))
        inputs.several_readers(readers > 1)
        inputs.prepare = loaded.prepare
        styles = [None if p is None else Path(p).with_suffix(".qml") for p in (confidence, probabilities, uncertainty)]
        with atomic_outputs(output, confidence, probabilities, uncertainty, qml, *styles) as temps:
            out_t, conf_t, prob_t, unc_t, qml_t, *style_t = temps
            finals = (out_t, conf_t, prob_t, unc_t)
            counts, nodata, tiles = _predict_on_grid(loaded, inputs, src, work, finals, cfg, branch, progress,
                                                     cancel, readers)
            _finish(finals, loaded.classes, overviews)
            if cfg.mmu is not None:
                counts, nodata = _clean(out_t, cfg, loaded.classes, src, cancel, note)
            qml_t.write_text(paletted_qml(loaded.classes))
            for path in style_t:  # grey ramps 0..1 (uncertainty: bright where the model hesitates)
                if path is not None:
                    path.write_text(grey_qml(1))

    return SegmentResult(
        Path(output), Path(confidence) if confidence else None, Path(probabilities) if probabilities else None,
        src.width, src.height, tiles, time.perf_counter() - start, branch, loaded.device_name,
        {n: int(c) for n, c in zip(loaded.classes.names, counts)}, int(nodata), messages,
        Path(uncertainty) if uncertainty else None, runtime, runtime_note,
    )


def prepare_runtime(model, cfg: SegmentConfig, raster: str | os.PathLike,
                    info: Callable[[str], None] | None = None) -> None:
    """Make the export that `cfg.runtime` runs (int8: calibrated on `raster`) when it is not cached yet,
    without segmenting: one of many processes makes it before the others start (once, not once each)."""
    loaded, cfg = _open_model(model, cfg, lambda m: None)
    _runtime(loaded, cfg, _check_request(loaded, cfg, None), raster, info or (lambda m: None), lambda m: None)


def _open_model(model, cfg: SegmentConfig, note) -> tuple:
    """The runner of `model` and the settings completed for it (its tile size where none was given)."""
    loaded = open_runner(model, cfg)
    for msg in getattr(loaded, "notes", ()):
        note(msg)
    cfg = cfg.for_model(loaded.chip_size)
    fixed = getattr(loaded, "fixed_tile", None)
    if fixed is not None and cfg.tile_size != fixed:
        raise InputError(f"this .onnx takes tiles of {fixed} x {fixed} pixels (a fixed input size, as Deepness needs); "
                         f"leave the tile size out, or export again with `stars export --tile-size {cfg.tile_size}`")
    return loaded, cfg


def _predict_on_grid(loaded, inputs, src, work, finals, cfg: SegmentConfig, branch: str, progress, cancel,
                     readers: int) -> tuple:
    """Class counts, no-data pixels and tiles of a run writing `finals` on the input's grid: directly,
    or (`work`: the model's pixel size) segmented on the working grid and brought back."""
    if work is None:
        return _predict(loaded, inputs, src.profile, finals, cfg, branch, progress, cancel, readers)
    import tempfile

    with tempfile.TemporaryDirectory(dir=finals[0].parent, prefix=".stars-work-") as tmp:
        works = tuple(None if t is None else Path(tmp) / t.name for t in finals)
        as_float = dataclasses.replace(cfg, probability_dtype="float32")  # warped as floats, then rounded
        _, _, tiles = _predict(loaded, inputs, work.profile, works, as_float, branch, progress, cancel, readers)
        counts, nodata = _warp_back(works, finals, src, loaded.classes, cancel, cfg.probability_dtype)
    return counts, nodata, tiles


def _runtime(loaded, cfg: SegmentConfig, branch: str, raster, info, note) -> tuple:
    """The runner for `cfg.runtime` (`engines.auto`), its name and the line saying what runs."""
    from ..engines import auto

    if hasattr(loaded, "session"):  # a .onnx file: ONNX Runtime, or OpenVINO where it runs the graph
        if cfg.runtime == "torch":
            raise InputError(f"a .onnx model runs in ONNX Runtime, not --runtime {cfg.runtime}; give the .stars file "
                             f"for PyTorch")
        engine = auto.ENGINE_NAMES.get(loaded.engine, loaded.engine)  # the engine that runs, not the reader
        return loaded, "onnx-file", f"runtime: {engine} with {Path(loaded.path).name}"
    runtime, why = auto.choose(cfg.runtime, loaded.device_type, branch, getattr(loaded, "path", None) is not None)
    if why:
        note(why)
    if runtime == "torch":
        return loaded, "torch", f"runtime torch: PyTorch on {loaded.device_name}"
    fast, said = auto.fast_runner(loaded, runtime, branch, cfg.tile_size, raster, info)
    return fast, runtime, said


def _clean(path: Path, cfg: SegmentConfig, classes: ClassTable, src, cancel, note) -> tuple[np.ndarray, int]:
    """The class map cleaned to the minimum mapping unit, in place; its class counts again."""
    from ..config import mmu_pixels
    from ..product.mmu import sieve

    threshold = mmu_pixels(cfg.mmu, pixel_area(src))
    sieve(path, threshold, cfg.mmu_connectivity, cancel)
    note(f"class map cleaned to a minimum mapping unit of {cfg.mmu} ({threshold} pixels, "
         f"{cfg.mmu_connectivity}-connected); confidence and probabilities are the model's")
    lut = classes.value_index()
    counts, nodata = np.zeros(len(classes), np.int64), 0
    with rasterio.open(path) as ds:
        for row in range(0, ds.height, BLOCK):
            data = ds.read(1, window=Window(0, row, ds.width, min(BLOCK, ds.height - row))).astype(np.int64)
            idx = lut[data]
            counts += np.bincount(idx[idx >= 0], minlength=len(classes))
            nodata += int((idx < 0).sum())
    return counts, nodata


def _open_inputs(stack: ExitStack, loaded, cfg: SegmentConfig, input, with_m2, clip,
                 note: Callable[[str], None]) -> tuple:
    """The rasters of a run opened in `stack`: (input, working grid or None, `_Inputs`). The input is
    read at the model's pixel size with `cfg.resample`, the optical raster on its grid; with several
    readers each reader thread reopens them for itself."""
    m1_name, m2_name = loaded.modalities
    role = m1_name if cfg.modality == 1 else m2_name
    stats = loaded.stats[cfg.modality - 1]

    def open_grid(stack: ExitStack, say: Callable[[str], None] = note) -> tuple:
        """(input, working grid or None, primary, optical, optical on the grid), opened in `stack`."""
        src = stack.enter_context(open_raster(input, role))
        work = _working_grid(src, loaded, cfg, say)
        primary = stack.enter_context(work) if work is not None else src
        m2 = secondary = None
        if with_m2 is not None:
            m2 = stack.enter_context(open_raster(with_m2, m2_name))
            secondary = aligned(primary, m2, Resampling.bilinear, os.fspath(input), os.fspath(with_m2))
            if secondary is not m2:
                stack.enter_context(secondary)
        return src, work, primary, m2, secondary

    def reopen(stack: ExitStack) -> tuple:  # a reader thread's own handles: (primary, secondary)
        _, _, primary, _, secondary = open_grid(stack, lambda _: None)
        return primary, secondary

    src, work, primary, m2, secondary = open_grid(stack)
    order = band_order(src, stats, role, os.fspath(input), note)
    order2 = None if m2 is None else band_order(m2, loaded.stats[1], m2_name, os.fspath(with_m2), note)
    polygons = None
    if clip is not None:
        polygons = [g for g, _ in geometries_in(clip[0], [(g, None) for g in clip[1]], primary.crs)]
    inputs = _Inputs(primary, secondary, (order, order2), (stats, loaded.stats[1] if secondary is not None else None),
                     polygons, loaded.prepare, reopen)
    return src, work, inputs


def segment_area(model, input: str | os.PathLike, output: str | os.PathLike, cfg: SegmentConfig = SegmentConfig(), *,
                 extent: tuple[float, float, float, float] | None = None, extent_crs: str | None = None,
                 mask: str | os.PathLike | None = None, **kwargs) -> SegmentResult:
    """`segment` limited to an extent (xmin, ymin, xmax, ymax, in `extent_crs`, default the input's)
    and/or to the polygons of a mask file: the output covers the extent (the whole input without
    one) on the input's own pixel grid, and every pixel outside the mask polygons is no data."""
    if extent is None and mask is None:
        return segment(model, input, output, cfg, **kwargs)
    import tempfile

    from osgeo import gdal

    # the output is checked against the inputs the user named, not the VRT made for the extent below
    check_outputs({"input raster": input, "optical raster": kwargs.get("with_m2"), "mask": mask,
                   "model file": model if isinstance(model, (str, os.PathLike)) else getattr(model, "path", None)},
                  {"output": output, "confidence output": kwargs.get("confidence"),
                   "probabilities output": kwargs.get("probabilities"), "uncertainty output": kwargs.get("uncertainty"),
                   "style file beside the output": Path(output).with_suffix(".qml")})
    clip = None
    if mask is not None:
        wkt, items = read_polygons(mask)
        if not items:
            raise InputError(f"the mask {os.fspath(mask)!r} holds no polygon; draw one or leave the mask out")
        clip = (wkt, [g for g, _ in items])
    with open_raster(input, "input") as src:
        window = None
        if extent is not None:
            window = _extent_window(src, input, extent, extent_crs)
        if clip is not None:
            _check_mask_overlaps(src, window, clip, mask)
    if window is None:
        return segment(model, input, output, cfg, clip=clip, **kwargs)
    kwargs.setdefault("calibration", input)  # an int8 export calibrates on the raster, not the extent
    with tempfile.TemporaryDirectory(dir=Path(output).resolve().parent, prefix=".stars-extent-") as tmp:
        vrt = Path(tmp) / "extent.vrt"
        gdal.Translate(str(vrt), os.fspath(input), format="VRT",
                       srcWin=[int(window.col_off), int(window.row_off), int(window.width), int(window.height)])
        return segment(model, vrt, output, cfg, clip=clip, **kwargs)


def _extent_window(src, input, extent: tuple[float, float, float, float], extent_crs: str | None):
    """The whole pixels of the input grid covering the extent, or one line naming what is wrong."""
    xmin, ymin, xmax, ymax = extent
    if not (xmin < xmax and ymin < ymax):
        raise InputError(f"the extent must be xmin, ymin, xmax, ymax with xmin < xmax and ymin < ymax, got {extent}")
    box = {"type": "Polygon", "coordinates": [[(xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)]]}
    if extent_crs:
        try:
            crs = rasterio.crs.CRS.from_user_input(extent_crs)
        except rasterio.errors.CRSError:
            raise InputError(f"--extent-crs {extent_crs!r} is not a CRS GDAL knows; give e.g. EPSG:4326 or "
                             f"EPSG:32633") from None
        if crs.is_geographic and not (-180 <= xmin and xmax <= 360 and -90 <= ymin and ymax <= 90):
            raise InputError(f"the extent {extent} is not in degrees, but --extent-crs {extent_crs} is geographic "
                             f"(longitude -180..180, latitude -90..90): give the extent's own CRS (that of the "
                             f"input is {crs_label(src.crs)})")
        try:
            box = geometries_in(crs.to_wkt(), [(box, None)], src.crs)[0][0]
        except Exception as exc:  # GDAL/PROJ: coordinates the CRS cannot take
            raise InputError(f"the extent {extent} cannot be transformed from {extent_crs} to the input's CRS "
                             f"({str(exc).strip()}): check that the numbers are in {extent_crs}") from None
    window = window_of(src, box)  # whole pixels of the input grid covering the extent
    if window is None:
        raise InputError(f"the extent {extent} does not overlap {os.fspath(input)!r} "
                         f"(its bounds: {tuple(round(v, 3) for v in src.bounds)}); check the extent and its CRS")
    return window


def _check_mask_overlaps(src, window, clip: tuple[str, list[dict]], mask) -> None:
    """A mask that misses the area to segment would give an all-no-data map: refused."""
    from rasterio.windows import bounds as window_bounds
    from shapely.geometry import box, shape

    wkt, geoms = clip
    area = box(*(window_bounds(window, src.transform) if window is not None else src.bounds))
    inside = [g for g, _ in geometries_in(wkt, [(g, None) for g in geoms], src.crs)]
    if not any(shape(g).intersects(area) for g in inside if g is not None):
        raise InputError(f"no polygon of the mask {os.fspath(mask)!r} overlaps the area to segment (bounds "
                         f"{tuple(round(v, 3) for v in area.bounds)} in {crs_label(src.crs)}): the map would be all "
                         f"no data; check the mask's layer, selection and CRS")


def open_runner(model, cfg: SegmentConfig):
    """What runs the network: `torch_runner.TorchRunner` for a .stars file or a LoadedModel (imports
    PyTorch), `onnx_model.OnnxModel` for a .onnx file (imports ONNX Runtime only)."""
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).lower().endswith(".onnx"):
        from ..engines.onnx_model import OnnxModel

        return OnnxModel(model, cfg.device)
    if hasattr(model, "probabilities"):  # a runner already (OnnxModel, TorchRunner)
        return model
    from ..engines.torch_runner import TorchRunner

    return TorchRunner(model, cfg.device, cfg.amp, cfg.weights)


_RUNNERS: dict[tuple, object] = {}


def open_runner_cached(path: str | os.PathLike, cfg: SegmentConfig):
    """`open_runner` remembered by (path, modification time, size, device, amp): batch runs over many
    rasters (QGIS batch mode, map sheets) read a model file once. Only the latest is kept."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size, cfg.device, cfg.amp, cfg.weights)
    if key not in _RUNNERS:
        _RUNNERS.clear()
        _RUNNERS[key] = open_runner(path, cfg)
    return _RUNNERS[key]


def _check_request(loaded, cfg: SegmentConfig, with_m2) -> str:
    """The model branch that serves the request, or a ValueError saying why none does."""
    m1_name, m2_name = loaded.modalities
    if with_m2 is not None and cfg.modality != 1:
        raise InputError(f"the {m2_name} raster is added to a {m1_name} input; leave it out when the input "
                         f"is already {m2_name}")
    if loaded.mode == "single" and (with_m2 is not None or cfg.modality == 2):
        raise InputError(f"this model (mode 'single') was trained on {m1_name} alone; segment a {m1_name} "
                         f"raster without {m2_name}")
    branch = "fused" if with_m2 is not None else f"m{cfg.modality}"
    if loaded.branches is not None and branch not in loaded.branches:
        raise InputError(f"this exported model holds the {', '.join(loaded.branches)} branch only; export the "
                         f"{branch} branch (stars export --branch {branch}) or segment from the .stars file")
    return branch


def _working_grid(src, loaded, cfg: SegmentConfig, note: Callable[[str], None]):
    """None when the input's pixel size suits the model; else a warning and, with `cfg.resample`,
    a VRT of the input at the model's pixel size (same CRS and footprint)."""
    model_crs = rasterio.crs.CRS.from_user_input(loaded.crs) if loaded.crs else src.crs
    trained = metres_per_pixel(model_crs, loaded.pixel_size)
    given = metres_per_pixel(src.crs, pixel_size(src), centre_latitude(src) if src.crs.is_geographic else 0.0)
    ratio = given / trained
    if 1 / PIXEL_SIZE_TOLERANCE <= ratio <= PIXEL_SIZE_TOLERANCE:
        return None
    if not cfg.resample:
        note(f"the input's pixels are {given:.3g} m but the model was trained on {trained:.3g} m pixels "
             f"({ratio:.2f}x); objects will look {'smaller' if ratio > 1 else 'larger'} than in training. "
             f"Resample with --resample (or resample the raster to {trained:.3g} m) for better results")
        return None
    width, height = max(1, round(src.width * ratio)), max(1, round(src.height * ratio))
    transform = src.transform * src.transform.scale(src.width / width, src.height / height)
    note(f"resampling the input from {given:.3g} m to the model's {trained:.3g} m pixels ({width} x {height}); "
         f"the result is brought back to the input grid")
    return WarpedVRT(src, crs=src.crs, transform=transform, width=width, height=height,
                     resampling=Resampling.average if ratio < 1 else Resampling.bilinear)


def _profiles(base: dict, classes: ClassTable, probability_dtype: str = "float32") -> tuple[dict, dict, dict, dict]:
    """GeoTIFF profiles of the class, confidence, probability and uncertainty rasters on the grid of `base`."""
    fits_byte = min(classes.values) >= 0 and max(classes.values) < 255
    if min(classes.values) < 0 or max(classes.values) >= 65535:
        raise InputError(f"class values must be in 0..65534 to be written as a GeoTIFF, got {list(classes.values)}")
    common = dict(driver="GTiff", width=base["width"], height=base["height"], crs=base["crs"],
                  transform=base["transform"], tiled=True, blockxsize=BLOCK, blockysize=BLOCK,
                  compress="deflate", BIGTIFF="IF_SAFER", NUM_THREADS=str(threads.in_force()))
    # (GDAL compresses the blocks on its threads and writes them in the order given: the same bytes)
    cls = dict(common, count=1, dtype="uint8" if fits_byte else "uint16", nodata=255 if fits_byte else 65535)
    conf = dict(common, count=1, dtype="float32", nodata=float("nan"), predictor=3)
    prob = dict(conf, count=len(classes), interleave="band")
    if probability_dtype == "uint8":  # no data in the mask (`probability_uint8`), not a value; the series'
        # working files for the filter: deflate level 1 writes them 3x faster than the default 6, 9 % larger
        prob = dict(common, count=len(classes), interleave="band", dtype="uint8", nodata=None, zlevel=1)
    unc = dict(conf, count=2, interleave="band")
    return cls, conf, prob, unc


def _predict(loaded, inputs: _Inputs, base_profile: dict, outputs, cfg: SegmentConfig, branch: str, progress,
             cancel, readers: int = 1) -> tuple[np.ndarray, int, int]:
    """Run the model over every tile of the input grid and write the outputs, while `readers`
    threads (`SegmentConfig.readers_for`) read the next batch's tiles. Returns the pixel count of
    every class, the no-data pixel count and the number of tiles."""
    height, width = base_profile["height"], base_profile["width"]
    grid = TileGrid.build(height, width, cfg.tile_size, cfg.overlap)
    tiles = list(grid)
    size = cfg.batch_for(loaded.device_type, getattr(loaded, "parallel", None))
    batches = [tiles[i:i + size] for i in range(0, len(tiles), size)]
    blend = loaded.blend_rows(height, width, BLOCK, grid.weights(), cfg.blend_on_device)
    pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="stars-read")
    pending: list = []
    try:
        with _Writers(outputs, base_profile, loaded.classes, cfg.probability_dtype) as writers:
            pending = [pool.submit(inputs.read, t) for t in batches[0]]
            done = 0
            for b, batch in enumerate(batches):
                if cancel is not None and cancel():
                    raise Cancelled("segmentation cancelled; no output was written (an earlier one is kept)")
                x1, x2, v1, v2 = _stack([f.result() for f in pending])
                threads.adapt()  # as many threads as there are idle cores (stars_core.threads)
                if b + 1 < len(batches):  # read ahead while the model runs
                    pending = [pool.submit(inputs.read, t) for t in batches[b + 1]]
                probs = loaded.probabilities(branch, x1, x2, v2, batch)  # (B, K, h, w), where the blend wants it
                for t, p, v in zip(batch, probs, v1):
                    writers.write(blend.finished(t.row))  # tiles come row by row: nothing above this one changes
                    blend.add(t, p, v)
                done += len(batch)
                if progress is not None:
                    progress(done, len(tiles))
            writers.write(blend.finished(height))
    finally:  # on an error or a cancel, reads not started are dropped; each reader closes its own handles
        for future in pending:
            future.cancel()
        wait(pending)
        try:
            inputs.close_in(pool, readers)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return writers.counts, writers.nodata, len(tiles)


class _Writers:
    """The open output rasters (classes; confidence and probabilities when asked for), written one
    finished block row at a time, with the class pixel counts."""

    def __init__(self, paths, base_profile: dict, classes: ClassTable, probability_dtype: str = "float32"):
        self.paths, self.classes = paths, classes
        self.profiles = _profiles(base_profile, classes, probability_dtype)
        self.values = np.asarray(classes.values, dtype=self.profiles[0]["dtype"])
        self.counts = np.zeros(len(classes), np.int64)
        self.nodata = 0

    def __enter__(self) -> "_Writers":
        with ExitStack() as stack:  # an output that fails to open closes the ones opened before it
            stack.enter_context(rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True))  # a uint8 file's mask inside it
            self.out, self.conf, self.prob, self.unc = (
                None if path is None else stack.enter_context(rasterio.open(path, "w", **profile))
                for path, profile in zip(self.paths, self.profiles))
            self._stack = stack.pop_all()
        if self.prob is not None:
            self.prob.descriptions = tuple(self.classes.names)
            if self.prob.dtypes[0] == "uint8":
                self.prob.update_tags(**PROBABILITY_SCALE)
        if self.unc is not None:
            self.unc.descriptions = UNCERTAINTY_BANDS
        return self

    def __exit__(self, *exc) -> bool:
        return self._stack.__exit__(*exc)

    def write(self, rows) -> None:
        """Write block rows from `BlendRows.finished`: classes, confidence, probabilities."""
        for row, p, ok in rows:
            best, top = top_class(p)
            window = Window(0, row, p.shape[2], ok.shape[0])
            out = self.values[best]
            every = ok.all()
            if not every:
                out[~ok] = self.profiles[0]["nodata"]
                self.nodata += int((~ok).sum())
            self.out.write(out, 1, window=window)
            self.counts += np.bincount((best if every else best[ok]).ravel(), minlength=len(self.classes))
            if self.conf is not None:
                self.conf.write(np.where(ok, top, np.nan).astype(np.float32), 1, window=window)
            if self.prob is not None and self.prob.dtypes[0] == "uint8":
                q, mask = probability_uint8(p, ok)
                self.prob.write(q, window=window)
                self.prob.write_mask(mask, window=window)
            elif self.prob is not None:
                self.prob.write(np.where(ok[None], p, np.nan).astype(np.float32), window=window)
            if self.unc is not None:
                self.unc.write(np.where(ok[None], uncertainty_bands(p), np.nan).astype(np.float32), window=window)


UNCERTAINTY_BANDS = ("normalised entropy", "margin (top-1 minus top-2 probability)")


def uncertainty_bands(p: np.ndarray) -> np.ndarray:
    """(K, h, w) class probabilities -> (2, h, w): entropy / log K, and top-1 minus top-2."""
    K = p.shape[0]
    entropy = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=0) / math.log(K) if K > 1 else np.zeros(p.shape[1:])
    top = np.partition(p, K - 2, axis=0)[-2:] if K > 1 else np.stack([np.zeros(p.shape[1:]), p[0]])
    return np.stack([np.clip(entropy, 0.0, 1.0), top[1] - top[0]])


def probability_uint8(p: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, h, w) probabilities and (h, w) validity -> uint8 round(255 p) (0 where not valid) and the
    dataset mask (255 valid, 0 no data). Rounded from float32, as the float32 output is stored."""
    scaled = np.clip(np.asarray(p, np.float32), 0, 1, dtype=np.float32)  # one buffer, worked in place
    scaled *= np.float32(255)
    np.rint(scaled, out=scaled)  # np.round's rounding: half to even
    np.copyto(scaled, 0, where=~ok[None])  # before the cast: no data may be NaN
    return scaled.astype(np.uint8), ok.astype(np.uint8) * 255


PROBABILITY_SCALE = {"STARS_PROBABILITY_SCALE": "1/255"}


def _finish(paths, classes: ClassTable, overviews: bool = True) -> None:
    """Colour table, class names and overviews (mode for classes, average for probabilities)."""
    out, conf, prob, unc = paths
    style_class_map(out, classes)
    if not overviews:
        return
    for path in (conf, prob, unc):
        if path is not None:
            with rasterio.open(path) as ds:
                factors = overview_factors(ds.width, ds.height)
            build_overviews(path, factors, "average")


def _warp_back(works, finals, src, classes: ClassTable, cancel,
               probability_dtype: str = "float32") -> tuple[np.ndarray, int]:
    """Bring work-grid outputs back onto the input grid (classes: nearest; probabilities: bilinear),
    with the input's no-data pixels as no-data. Returns class pixel counts and the no-data count."""
    out_p, conf_p, prob_p, unc_p = _profiles(src.profile, classes, probability_dtype)
    lut = classes.value_index()
    counts, nodata = np.zeros(len(classes), np.int64), 0
    for work, final, profile in zip(works, finals, (out_p, conf_p, prob_p, unc_p)):
        if work is None:
            continue
        nearest = profile is out_p
        with rasterio.open(work) as w, WarpedVRT(
            w, crs=src.crs, transform=src.transform, width=src.width, height=src.height,
            resampling=Resampling.nearest if nearest else Resampling.bilinear,
        ) as vrt, rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(final, "w", **profile) as dst:
            if profile is prob_p:
                dst.descriptions = tuple(classes.names)
                if profile["dtype"] == "uint8":
                    dst.update_tags(**PROBABILITY_SCALE)
            elif profile is unc_p:
                dst.descriptions = UNCERTAINTY_BANDS
            for row in range(0, src.height, BLOCK):
                if cancel is not None and cancel():
                    raise Cancelled("segmentation cancelled; no output was written (an earlier one is kept)")
                window = Window(0, row, src.width, min(BLOCK, src.height - row))
                data = vrt.read(window=window)
                ok = valid_mask(src, src.read(window=window), window)
                if profile is prob_p and profile["dtype"] == "uint8":
                    data, mask = probability_uint8(data, ok & np.isfinite(data).all(axis=0))
                    dst.write_mask(mask, window=window)
                else:
                    data[:, ~ok] = profile["nodata"]
                dst.write(data, window=window)
                if nearest:
                    idx = lut[data[0][ok & (data[0] != profile["nodata"])]]
                    counts += np.bincount(idx[idx >= 0], minlength=len(classes))
                    nodata += int((~ok | (data[0] == profile["nodata"])).sum())
    return counts, nodata
