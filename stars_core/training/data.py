"""Paired-raster training data: scenes, class table, normalisation statistics, chips and splits.

A scene is a modality-1 raster (SAR or DSM), a modality-2 raster (optical) and a label (raster, or
polygons with a class field). Modality 2 and the label are read on modality 1's grid (WarpedVRT,
bilinear for images and nearest for labels) when their CRS, resolution or extent differ.

Chips are sampled on a coarse grid of CELL x CELL pixels. A scan over each scene records, per cell,
the fraction of pixels usable for training (label valid, both modalities valid, inside the AOI);
chips mostly no-data are never drawn. Validation uses whole chip-sized blocks kept out of training,
so no validation pixel is ever seen by a training chip. Chip i is drawn from a generator seeded with
(seed, i): the same run gives the same chips in any process, which makes resuming exact.
"""
from __future__ import annotations

import os
import atexit
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.windows import Window

from ..bands import BandStats, normalise
from ..classes import IGNORE, ClassTable
from ..config import STRIDE, DataConfig
from ..raster import aligned, band_names, geometries_in, open_raster, pixel_size, read_polygons, valid_mask
from ..errors import InputError

CELL = 8  # chip positions and validity are tracked on an 8 x 8 pixel grid
STATS_SAMPLES = 2_000_000  # pixels per modality used for normalisation statistics


@dataclass(frozen=True)
class SceneSpec:
    """Paths of one training scene. `labels` is a raster or a vector file (then `class_field`).
    `georeferenced=False`: a chip of a chip folder (no CRS; the three files share one pixel grid)."""

    m1: str
    m2: str
    labels: str
    class_field: str | None = None
    georeferenced: bool = True
    aoi: str | None = None  # this scene's own AOI (overrides the run's)
    name: str | None = None  # how messages name the scene (default: the modality-1 file name)

    @property
    def label(self) -> str:
        return self.name or os.path.basename(self.m1)


def read_scene_table(path: str | os.PathLike, class_field: str | None = None) -> list[SceneSpec]:
    """Scenes from a CSV with columns m1, m2, labels and optionally aoi and name; relative paths
    are relative to the CSV's folder."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scene table {str(path)!r} not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
            reader = csv.DictReader(f)
            header = [(h or "").strip().lower() for h in reader.fieldnames or []]
            rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in r.items() if isinstance(k, str)}
                    for r in reader]
    except UnicodeDecodeError as exc:
        raise InputError(f"scene table {str(path)!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                         f"position {exc.start}); save it as UTF-8 (in a spreadsheet: CSV UTF-8)") from None
    missing = [c for c in ("m1", "m2", "labels") if c not in header]
    if missing:
        raise InputError(f"scene table {str(path)!r} needs the columns m1, m2 and labels (optional: aoi, name); "
                         f"it lacks {', '.join(missing)}")

    def resolve(value: str) -> str | None:
        return None if not value else str(Path(value) if Path(value).is_absolute() else path.parent / value)

    specs = []
    for i, r in enumerate(rows, start=2):
        if not (r["m1"] and r["m2"] and r["labels"]):
            raise InputError(f"scene table {str(path)!r}, line {i}: m1, m2 and labels must all be given")
        specs.append(SceneSpec(resolve(r["m1"]), resolve(r["m2"]), resolve(r["labels"]), class_field,
                               aoi=resolve(r.get("aoi", "")), name=r.get("name") or None))
    if not specs:
        raise InputError(f"scene table {str(path)!r} lists no scene")
    return specs


MAX_OPEN_SCENES = 8  # scenes whose files stay open at once, per process (3-5 handles each)
_OPEN: "OrderedDict[int, weakref.ref]" = OrderedDict()  # weak: a scene nobody holds closes as before


@atexit.register
def _close_all() -> None:
    """Close the files still open before the interpreter (and GDAL) shut down."""
    while _OPEN:
        scene = _OPEN.popitem()[1]()
        if scene is not None:
            scene.close()


class Scene:
    """One scene on modality 1's grid. Opens its files lazily, once per process (fork-safe)."""

    def __init__(
        self, spec: SceneSpec, table: ClassTable | None = None, ignore_values: Iterable[int] = (),
        aoi: tuple[str, list] | None = None,
    ):
        self.spec = spec
        self.table = table
        self.ignore_values = tuple(int(v) for v in ignore_values)
        self.aoi = aoi
        self._pid = None
        self._label_array: np.ndarray | None = None
        self._aoi_cells: np.ndarray | None = None
        geo = spec.georeferenced
        with open_raster(spec.m1, "modality-1", geo) as m1:
            self.crs, self.transform = m1.crs, m1.transform
            self.height, self.width = m1.height, m1.width
            self.m1_bands = band_names(m1)
            self.pixel_size = pixel_size(m1)
        with open_raster(spec.m2, "modality-2", geo) as m2:
            self.m2_bands = band_names(m2)
        self.vector_labels = not _is_raster(spec.labels)

    # -- file access -------------------------------------------------------------------------
    def _open(self) -> None:
        if self._pid == os.getpid():
            if id(self) in _OPEN:
                _OPEN.move_to_end(id(self))
            return
        while len(_OPEN) >= MAX_OPEN_SCENES:  # a bounded number of open files, however many scenes
            oldest = _OPEN.popitem(last=False)[1]()
            if oldest is not None:
                oldest.close()
        geo = self.spec.georeferenced
        self._m1 = open_raster(self.spec.m1, "modality-1", geo)
        self._m2_src = open_raster(self.spec.m2, "modality-2", geo)
        if not self.vector_labels:
            self._lab_src = open_raster(self.spec.labels, "label", geo)
        if geo:
            self._m2 = aligned(self._m1, self._m2_src, Resampling.bilinear, self.spec.m1, self.spec.m2)
            if not self.vector_labels:
                self._lab = aligned(self._m1, self._lab_src, Resampling.nearest, self.spec.m1, self.spec.labels)
        else:  # chips: no georeferencing to align by, so the three must share one pixel grid
            self._m2, self._lab = self._m2_src, self._lab_src
            for ds, path in ((self._m2, self.spec.m2), (self._lab, self.spec.labels)):
                if (ds.height, ds.width) != (self._m1.height, self._m1.width):
                    raise InputError(f"chip {path!r} is {ds.width} x {ds.height} pixels but {self.spec.m1!r} is "
                                     f"{self._m1.width} x {self._m1.height}; the chips of one name must match")
        self._pid = os.getpid()
        _OPEN[id(self)] = weakref.ref(self)

    def close(self) -> None:
        """Close this scene's files (they reopen on the next read); handles inherited from another
        process (fork) are dropped, not closed."""
        mine = self._pid == os.getpid()
        for name in ("_m2", "_lab", "_m2_src", "_lab_src", "_m1"):  # warped views before their sources
            ds = self.__dict__.pop(name, None)
            if mine and ds is not None and not ds.closed:
                ds.close()
        self._pid = None
        _OPEN.pop(id(self), None)

    _HANDLES = ("_m1", "_m2_src", "_m2", "_lab_src", "_lab")

    def __getstate__(self) -> dict:
        """Open datasets do not cross process boundaries; each process reopens them."""
        state = {k: v for k, v in self.__dict__.items() if k not in self._HANDLES}
        state["_pid"] = None
        return state

    def raw_label_values(self) -> set[int]:
        """Distinct label values (raster) or class-field values (vector), no-data excluded."""
        if self.vector_labels:
            _, items = read_polygons(self.spec.labels, self.spec.class_field)
            return {v for _, v in items if v is not None}
        self._open()
        values: set[int] = set()
        for window in _strips(self):
            block = self._lab.read(1, window=window, masked=True)
            values.update(int(v) for v in np.unique(block.compressed()))
        return values

    def label_colormap(self) -> dict:
        if self.vector_labels:
            return {}
        self._open()
        try:
            return self._lab_src.colormap(1)
        except ValueError:
            return {}

    def _rasterized_labels(self) -> np.ndarray:
        if self._label_array is None:
            wkt, items = read_polygons(self.spec.labels, self.spec.class_field)
            index = {v: i for i, v in enumerate(self.table.values)}
            names = {n: i for i, n in enumerate(self.table.names)}
            shapes = []
            for geom, value in geometries_in(wkt, items, self.crs):
                if value is None:
                    continue
                key = value if isinstance(value, str) else int(value)
                cls = names.get(key) if isinstance(key, str) else index.get(key)
                if cls is None:
                    if key in self.ignore_values:
                        continue
                    raise InputError(
                        f"class {key!r} of field {self.spec.class_field!r} in {self.spec.labels} is not in "
                        f"the class table; add it to the table or list it with --ignore-value"
                    )
                shapes.append((geom, cls))
            self._label_array = rasterize(
                shapes, out_shape=(self.height, self.width), transform=self.transform,
                fill=IGNORE, dtype="uint8",
            ) if shapes else np.full((self.height, self.width), IGNORE, np.uint8)
        return self._label_array

    def read(self, window: Window) -> tuple[np.ndarray, ...]:
        """Raw m1 (C1, h, w), raw m2 (C2, h, w), label indices (h, w) and the validity masks of m1
        and m2 (h, w). The label is IGNORE wherever it or either modality has no data."""
        self._open()
        x1 = self._m1.read(window=window)
        x2 = self._m2.read(window=window)
        if self.vector_labels:
            r, c = int(window.row_off), int(window.col_off)
            y = self._rasterized_labels()[r:r + int(window.height), c:c + int(window.width)].copy()
        else:
            raw = self._lab.read(1, window=window, masked=True)
            y = self.table.lookup(raw.data, self.ignore_values, self.spec.labels, mask=np.ma.getmaskarray(raw))
        v1 = valid_mask(self._m1, x1, window)
        v2 = valid_mask(self._m2, x2, window)
        y[~(v1 & v2)] = IGNORE
        return x1, x2, y, v1, v2

    def aoi_cells(self) -> np.ndarray | None:
        """(rows/CELL, cols/CELL) bool mask of cells whose centre lies inside the AOI, or None."""
        if self.aoi is None:
            return None
        if self._aoi_cells is None:
            wkt, items = self.aoi
            geoms = [g for g, _ in geometries_in(wkt, items, self.crs)]
            shape = (self.height // CELL, self.width // CELL)
            self._aoi_cells = rasterize([(g, 1) for g in geoms], out_shape=shape, fill=0, dtype="uint8",
                                        transform=self.transform * self.transform.scale(CELL)).astype(bool)
        return self._aoi_cells


def _is_raster(path: str) -> bool:
    import warnings

    if not os.path.exists(path):
        raise FileNotFoundError(f"label file {path!r} not found")
    try:
        with warnings.catch_warnings():  # a chip without georeferencing is still a raster
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path):
                return True
    except rasterio.errors.RasterioIOError:
        return False


def _strips(scene: Scene, rows: int = 512):
    for r in range(0, scene.height, rows):
        yield Window(0, r, scene.width, min(rows, scene.height - r))


@dataclass
class SceneScan:
    """What one pass over a scene learns: usable fraction per cell, class pixel counts, samples."""

    valid: np.ndarray  # (rows/CELL, cols/CELL) float32
    class_counts: np.ndarray  # (K,) int64
    m1_samples: np.ndarray  # (n, C1)
    m2_samples: np.ndarray  # (n, C2)
    outside: np.ndarray | None = None  # (rows/CELL, cols/CELL) bool: outside the AOI, never in a chip


def scan_scene(scene: Scene, num_classes: int, rng: np.random.Generator, budget: int) -> SceneScan:
    rows_c, cols_c = scene.height // CELL, scene.width // CELL
    valid = np.zeros((rows_c, cols_c), np.float32)
    counts = np.zeros(num_classes, np.int64)
    per_strip = max(1, budget * 512 // max(1, scene.height))
    s1, s2 = [], []
    strip = 512
    for r0 in range(0, rows_c * CELL, strip):
        h = min(strip, rows_c * CELL - r0)
        x1, x2, y, _, _ = scene.read(Window(0, r0, cols_c * CELL, h))
        ok = y != IGNORE
        valid[r0 // CELL:(r0 + h) // CELL] = ok.reshape(h // CELL, CELL, cols_c, CELL).mean(axis=(1, 3))
        counts += np.bincount(y[ok], minlength=num_classes)[:num_classes]
        idx = np.flatnonzero(ok)
        if idx.size:
            pick = rng.choice(idx, size=min(per_strip, idx.size), replace=False)
            s1.append(x1.reshape(x1.shape[0], -1)[:, pick].T.astype(np.float64))
            s2.append(x2.reshape(x2.shape[0], -1)[:, pick].T.astype(np.float64))
    aoi = scene.aoi_cells()
    if aoi is not None:
        valid *= aoi
    empty = lambda c: np.zeros((0, c))  # noqa: E731
    return SceneScan(valid, counts,
                     np.concatenate(s1) if s1 else empty(len(scene.m1_bands)),
                     np.concatenate(s2) if s2 else empty(len(scene.m2_bands)),
                     None if aoi is None else ~aoi)


SCAN_THREADS = 4  # scenes scanned at once (reading and numpy release the GIL)


def scan_scenes(scenes: Sequence[Scene], table: ClassTable, seed: int, cache: str | None, log) -> list[SceneScan]:
    """Scan every scene (in parallel; scene i samples with its own generator seeded by (seed, i), so
    the result does not depend on the order threads finish). With `cache` (a file beside the model
    output), a repeated or resumed run with the same files (path, size, modification time), class
    table, ignore values, AOIs and seed loads the scans instead of reading the rasters again."""
    from concurrent.futures import ThreadPoolExecutor

    key = _scan_key(scenes, table, seed)
    if cache:
        cached = _load_scans(cache, key, len(scenes))
        if cached is not None:
            log(f"band statistics and chip positions of {len(scenes)} scene(s) from {cache}")
            return cached
    budget = STATS_SAMPLES // len(scenes)

    def one(i: int) -> SceneScan:
        scene = scenes[i]
        log(f"scanning scene {i + 1}/{len(scenes)}: {scene.spec.label} ({scene.width} x {scene.height})")
        return scan_scene(scene, len(table), np.random.default_rng([seed, 11, i]), budget)

    with ThreadPoolExecutor(max_workers=min(SCAN_THREADS, len(scenes)), thread_name_prefix="stars-scan") as pool:
        scans = list(pool.map(one, range(len(scenes))))
    if cache:
        _save_scans(cache, key, scans)
    return scans


def _scan_key(scenes: Sequence[Scene], table: ClassTable, seed: int) -> str:
    import json

    def stamp(path):
        if not path:
            return None
        st = os.stat(path)
        return [os.path.abspath(path), st.st_size, st.st_mtime_ns]

    return json.dumps({"v": 1, "cell": CELL, "samples": STATS_SAMPLES, "seed": seed, "table": table.to_dict(),
                       "scenes": [[stamp(s.spec.m1), stamp(s.spec.m2), stamp(s.spec.labels), stamp(s.spec.aoi),
                                   s.spec.class_field, list(s.ignore_values), s.aoi is not None] for s in scenes]},
                      sort_keys=True)


def _load_scans(path: str, key: str, n: int) -> list[SceneScan] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return [SceneScan(z[f"valid{i}"], z[f"counts{i}"], z[f"s1_{i}"], z[f"s2_{i}"],
                              z[f"outside{i}"] if f"outside{i}" in z else None) for i in range(n)]
    except (OSError, KeyError, ValueError):
        return None


def _save_scans(path: str, key: str, scans: list[SceneScan]) -> None:
    from ..files import atomic_path

    arrays = {"key": np.array(key)}
    for i, sc in enumerate(scans):
        arrays.update({f"valid{i}": sc.valid, f"counts{i}": sc.class_counts, f"s1_{i}": sc.m1_samples,
                       f"s2_{i}": sc.m2_samples})
        if sc.outside is not None:
            arrays[f"outside{i}"] = sc.outside
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    except OSError:  # a cache that cannot be written only costs the next run a scan
        pass


def _window_sums(grid: np.ndarray, k: int) -> np.ndarray:
    """Sum of every k x k window of `grid` (top-left indexed), shape (R-k+1, C-k+1)."""
    s = np.pad(grid.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]


@dataclass
class ChipPlan:
    """Where training and validation chips come from, for all scenes."""

    chip_size: int
    train: np.ndarray  # (N, 3) int: scene, row, col (pixels) of candidate training chips
    val: np.ndarray  # (M, 3) int: validation chips
    class_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def plan_chips(scans: Sequence[SceneScan], chip_size: int, val_fraction: float, min_valid: float,
               seed: int) -> ChipPlan:
    """Choose validation blocks (chip-sized, spatially separate) and the training candidates: chips
    with at least `min_valid` usable pixels that overlap no validation block and no cell outside the AOI."""
    k = chip_size // CELL
    rng = np.random.default_rng([seed, 7])
    blocks = []  # (scene, row_cell, col_cell) of full blocks usable for validation
    for s, scan in enumerate(scans):
        rows, cols = scan.valid.shape
        outside = scan.outside if scan.outside is not None else np.zeros(scan.valid.shape, bool)
        for r in range(0, rows - k + 1, k):
            for c in range(0, cols - k + 1, k):
                if scan.valid[r:r + k, c:c + k].mean() >= min_valid and not outside[r:r + k, c:c + k].any():
                    blocks.append((s, r, c))
    n_val = int(round(val_fraction * len(blocks)))
    if val_fraction > 0 and len(blocks) >= 2:
        n_val = min(max(n_val, 1), len(blocks) - 1)
    else:
        n_val = 0
    chosen = [blocks[i] for i in sorted(rng.choice(len(blocks), size=n_val, replace=False))] if n_val else []

    train = []
    for s, scan in enumerate(scans):
        held = np.zeros(scan.valid.shape, np.float32) if scan.outside is None else scan.outside.astype(np.float32)
        for bs, r, c in chosen:
            if bs == s:
                held[r:r + k, c:c + k] = 1
        if scan.valid.shape[0] < k or scan.valid.shape[1] < k:
            continue
        usable = _window_sums(scan.valid * (1 - held), k) / (k * k)
        overlap = _window_sums(held, k)
        rr, cc = np.nonzero((usable >= min_valid) & (overlap == 0))
        train.append(np.stack([np.full_like(rr, s), rr * CELL, cc * CELL], axis=1))
    train_arr = np.concatenate(train) if train else np.zeros((0, 3), np.int64)
    val_arr = np.array([(s, r * CELL, c * CELL) for s, r, c in chosen], np.int64).reshape(-1, 3)
    counts = np.sum([scan.class_counts for scan in scans], axis=0)
    return ChipPlan(chip_size, train_arr, val_arr, counts)


def augment(arrays: Sequence[np.ndarray], k: int) -> list[np.ndarray]:
    """The same one of the 8 flips/rotations (k in 0..7) applied to every (..., H, W) array."""
    out = []
    for a in arrays:
        a = np.rot90(a, k % 4, axes=(-2, -1))
        if k >= 4:
            a = a[..., ::-1]
        out.append(np.ascontiguousarray(a))
    return out


class ChipDataset(torch.utils.data.Dataset):
    """Normalised (x1, x2, y) chips. Training: chip i of the run is random but fixed by (seed, i),
    `offset` skips chips already used (resume) and `stride`/`rank` split chips between processes.
    Validation (`positions` given, no augmentation): the listed chips in order."""

    def __init__(self, scenes: Sequence[Scene], stats: tuple[BandStats, BandStats], chip_size: int,
                 positions: np.ndarray, length: int, seed: int = 0, train: bool = True,
                 offset: int = 0, stride: int = 1, rank: int = 0):
        self.scenes, self.stats, self.chip_size = list(scenes), stats, chip_size
        self.positions, self.length, self.seed, self.train = positions, length, seed, train
        self.offset, self.stride, self.rank = offset, stride, rank
        if len(positions) == 0:
            raise InputError("no chip positions to draw from")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        if self.train:
            index = (self.offset + i) * self.stride + self.rank
            rng = np.random.default_rng([self.seed, index])
            s, r, c = self.positions[rng.integers(len(self.positions))]
            k = int(rng.integers(8))
        else:
            s, r, c = self.positions[i]
            k = 0
        scene = self.scenes[int(s)]
        x1, x2, y, v1, v2 = scene.read(Window(int(c), int(r), self.chip_size, self.chip_size))
        x1, x2 = normalise(x1, v1, self.stats[0]), normalise(x2, v2, self.stats[1])
        x1, x2, y = augment([x1, x2, y], k)
        return torch.from_numpy(x1), torch.from_numpy(x2), torch.from_numpy(y.astype(np.int64))


@dataclass
class TrainingData:
    """Everything training needs from the rasters, decided once before the first step."""

    scenes: list[Scene]
    table: ClassTable
    stats: tuple[BandStats, BandStats]
    plan: ChipPlan
    pixel_size: tuple[float, float]
    crs: str | None  # None for chip folders (not georeferenced)
    skipped: list[dict] = field(default_factory=list)  # scenes left out (--skip-bad-scenes), with the reason

    @property
    def chip_size(self) -> int:
        return self.plan.chip_size

    def use_table_and_stats(self, table: ClassTable, stats: tuple[BandStats, BandStats]) -> None:
        """Read labels with `table` and normalise with `stats` (a resumed run keeps its model file's)."""
        self.table, self.stats = table, stats
        for scene in self.scenes:
            scene.table = table


def build_class_table(scenes: Sequence[Scene], class_table: str | None, ignore_values: Sequence[int]) -> ClassTable:
    """The class table from a file, else from the label values found (colours from the label
    raster's colour table when it has one)."""
    if class_table:
        return ClassTable.from_file(class_table)
    values: set = set()
    for scene in scenes:
        values |= scene.raw_label_values()
    values -= set(ignore_values)
    if any(isinstance(v, str) for v in values):
        names = sorted(str(v) for v in values)
        return ClassTable.generated(range(1, len(names) + 1), names)
    if len(values) < 2:
        raise InputError(f"the labels hold {len(values)} class value(s) {sorted(values)}; at least 2 are needed")
    colormap = scenes[0].label_colormap()
    return ClassTable.from_colormap(colormap, values) if colormap else ClassTable.generated(values)


def _refuse_repeated_scenes(specs: Sequence[SceneSpec]) -> None:
    """A scene listed twice (same files and AOI) would hold out validation blocks that are the other
    copy's training chips, and report an inflated validation mIoU: refused, naming both."""
    seen: dict[tuple, int] = {}
    for i, spec in enumerate(specs, start=1):
        key = tuple(os.path.realpath(p) if p else None for p in (spec.m1, spec.m2, spec.labels, spec.aoi)) \
            + (spec.class_field,)
        if key in seen:
            raise InputError(f"scene {i} ({spec.label}) repeats scene {seen[key]}: the same rasters, labels and AOI. "
                             f"Its validation blocks would be the other copy's training chips (an inflated "
                             f"validation mIoU); list each scene once")
        seen[key] = i


def prepare_training_data(specs: Sequence[SceneSpec], cfg: DataConfig, seed: int = 0, log=print) -> TrainingData:
    """Open and check the scenes, build the class table, scan for statistics and plan the chips."""
    if not specs:
        raise InputError("no training scenes given")
    _refuse_repeated_scenes(specs)
    class_table, ignore_values, aoi = cfg.class_table, cfg.ignore_values, cfg.aoi
    chip_size, val_fraction, min_valid = cfg.chip_size, cfg.val_fraction, cfg.min_valid
    aoi_items = None
    if aoi and not all(s.georeferenced for s in specs):
        raise InputError("an AOI needs georeferenced scenes; chips of a chip folder have no CRS to place it")
    if aoi:
        aoi_items = read_polygons(aoi)
        if not aoi_items[1]:
            raise InputError(f"the AOI {aoi!r} holds no polygon; draw one or leave the AOI out")
    scenes, skipped = _open_scenes(specs, aoi_items, ignore_values, cfg.skip_bad_scenes, log)
    table = build_class_table(scenes, class_table, ignore_values)
    for scene in scenes:
        scene.table = table
    scenes = _checked(scenes, skipped, cfg.skip_bad_scenes, log, lambda scene: scene._open())  # alignment
    if aoi_items is not None and not any(_aoi_overlaps(scene, aoi_items) for scene in scenes):
        raise InputError(f"the AOI {aoi!r} does not overlap any training scene; check its extent and CRS")

    smallest = min(min(s.height, s.width) for s in scenes)
    chip = min(chip_size, smallest // STRIDE * STRIDE)
    if chip < STRIDE:
        raise InputError(f"scenes must be at least {STRIDE} x {STRIDE} pixels; the smallest is {smallest} pixels across")
    if chip < chip_size:
        log(f"chip size {chip_size} is larger than the smallest scene: using {chip}")

    scans = scan_scenes(scenes, table, seed, cfg.scan_cache, log)
    if sum(int(sc.class_counts.sum()) for sc in scans) == 0:
        raise InputError("no labelled pixel with valid data in both modalities: the label, the rasters' "
                         "no-data and the AOI leave nothing to train on")
    stats = (
        BandStats.from_samples(scenes[0].m1_bands, np.concatenate([sc.m1_samples for sc in scans])),
        BandStats.from_samples(scenes[0].m2_bands, np.concatenate([sc.m2_samples for sc in scans])),
    )
    plan = plan_chips(scans, chip, val_fraction, min_valid, seed)
    if len(plan.train) == 0:
        raise InputError(
            f"every {chip} x {chip} chip is mostly no-data (less than {min_valid:.0%} labelled and valid in "
            f"both modalities); use a smaller --chip-size, a lower --min-valid, or check the no-data values"
        )
    log(f"{len(table)} classes, chip {chip} px, {len(plan.train)} training positions, {len(plan.val)} validation chips")
    crs = scenes[0].crs.to_string() if scenes[0].crs is not None else None
    return TrainingData(scenes, table, stats, plan, scenes[0].pixel_size, crs, skipped)


def _open_scenes(specs: Sequence[SceneSpec], aoi_items, ignore_values, skip: bool, log):
    """The scenes that open and agree with the first one on band counts; a failing scene is named
    with its reason, and with `skip` left out (and listed) instead of stopping the run."""
    skipped: list[dict] = []

    def make(spec: SceneSpec) -> Scene:
        own_aoi = read_polygons(spec.aoi) if spec.aoi else aoi_items
        scene = Scene(spec, aoi=own_aoi, ignore_values=ignore_values)
        if scene.vector_labels and not spec.class_field:
            raise InputError(f"labels {spec.labels!r} are polygons: name the class field (--class-field)")
        return scene

    scenes = _checked(specs, skipped, skip, log, make)
    first = scenes[0]

    def same_bands(scene: Scene) -> None:
        for role, key in (("modality-1", "m1"), ("modality-2", "m2")):
            a, b = getattr(first, f"{key}_bands"), getattr(scene, f"{key}_bands")
            if len(a) != len(b):
                raise InputError(f"band count mismatch: its {role} raster {getattr(scene.spec, key)} has {len(b)} "
                                 f"band(s), the first scene's {len(a)}; every scene must give the same bands in the "
                                 f"same order")

    return [first] + _checked(scenes[1:], skipped, skip, log, same_bands), skipped


def _checked(items: Sequence, skipped: list[dict], skip: bool, log, check) -> list:
    """`check` each scene (or spec); a failure names the scene and either stops the run or, with
    `skip`, drops the scene and records why. Returns what passed (the check's result for specs)."""
    kept = []
    for item in items:
        spec = item.spec if isinstance(item, Scene) else item
        try:
            result = check(item)
        except (InputError, FileNotFoundError) as exc:
            message = str(exc)
            if not skip:
                raise InputError(f"scene {spec.label}: {message} (--skip-bad-scenes trains on the others)") from None
            log(f"skipping scene {spec.label}: {message}")
            skipped.append({"scene": spec.label, "m1": spec.m1, "reason": message})
            continue
        kept.append(result if result is not None else item)
    if items and not kept:
        raise InputError("no training scene could be used: " + "; ".join(f"{s['scene']}: {s['reason']}" for s in skipped))
    return kept


def _aoi_overlaps(scene: Scene, aoi_items) -> bool:
    cells = scene.aoi_cells()
    return bool(cells is not None and cells.any())
