"""Assets warped onto the grid, kept on disk, so a rerun or a second command over the same area reads
nothing twice, and every remote asset is opened once per fetch instead of once per block.

    with warped_assets(folder, log=print, tick=step):  # None: a temporary folder, removed at the end
        read_block(href, grid, window)                  # read.py: the first call of an asset warps it
                                                        # whole into the folder, later calls read there

One entry per (asset URL without its signature, grid CRS + transform + size, resampling): a tiled,
compressed float32 GeoTIFF (NaN no data) written block by block from the same windows read_block
reads (so the pixels are the same bits), under a temporary name then renamed, with a JSON record of
its size and SHA-256 written last. An entry whose file does not match its record (cut short,
damaged) is read again, said in one line. Layout: FOLDER/<grid>/grid.json (the grid's CRS, bounds
and size, so a user can tell the areas apart) and FOLDER/<grid>/<asset>.tif + .json.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from ..errors import InputError
from ..files import atomic_path, sha256, user_cache_dir
from .aoi import LONLAT, Grid
from .read import CURRENT, blocks, open_warped, unsigned

VERSION = 1  # of the entries' format: a new one makes new keys


def default_folder() -> Path:
    """The per-user fetch cache: $STARS_CACHE_DIR/fetch, else ~/.cache/stars/fetch (XDG_CACHE_HOME)."""
    return user_cache_dir() / "fetch"


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps([VERSION, *parts], default=str).encode()).hexdigest()[:24]


def grid_key(grid: Grid) -> str:
    return _digest(grid.crs.to_wkt(), list(grid.transform)[:6], grid.width, grid.height)


def entry_path(folder: Path, href: str, grid: Grid, resampling: Resampling) -> Path:
    """Where the asset at `href` warped onto `grid` with `resampling` is kept (its .json beside)."""
    return folder / grid_key(grid) / f"{_digest(unsigned(href), resampling.name)}.tif"


def record_of(path: Path) -> dict | None:
    try:
        return json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None


def is_cached(path: Path, check_hash: bool = False) -> bool:
    """The entry exists whole: its size (and with `check_hash` its SHA-256) matches its record."""
    record = record_of(path)
    if record is None or not path.is_file() or path.stat().st_size != record.get("size"):
        return False
    return not check_hash or sha256(path) == record.get("sha256")


def resampling_for(source, key: str) -> Resampling:
    """How pair.py and series.py read an asset: classes (labels, a scene classification) nearest,
    measurements bilinear."""
    return Resampling.nearest if source.role == "labels" or (source.mask and key == source.mask[0]) \
        else Resampling.bilinear


def mark_cached(plan, folder: Path | None) -> tuple[int, int]:
    """Set each role's `cached` bytes (the estimate of the assets whose entries exist, plan.py; items
    the write will not read, `unread_ids`, left out) and return how many assets are still to be read,
    of how many the write reads."""
    from .plan import window_estimate

    missing = reads = 0
    for role in plan.roles:
        role.cached = role.cached_pixels = 0
        for item in (i for i in role.items if i["id"] not in role.unread_ids):
            keys = [k for k in role.source.assets if folder is not None and is_cached(entry_path(
                folder, item["assets"][k]["href"], plan.request.grid, resampling_for(role.source, k)))]
            missing += len(role.source.assets) - len(keys)
            reads += len(role.source.assets)
            b, p = window_estimate(item, role.source, plan.request.grid, keys) if keys else (0, 0)
            role.cached, role.cached_pixels = role.cached + b, role.cached_pixels + p
    return missing, reads


class WarpedAssets:
    """The entries of one fetch: filled on first use, then read by window from the local files."""

    def __init__(self, folder: Path, log: Callable[[str], None], tick: Callable[[], None], kept: bool = True):
        self.folder, self.log, self.tick, self.kept = folder, log, tick, kept
        self.hits: set[str] = set()  # unsigned URLs found whole in the folder
        self.reads: set[str] = set()  # unsigned URLs read from their host by this fetch
        self._ready: set[Path] = set()  # entries checked whole (or filled) by this fetch

    def read(self, href: str, grid: Grid, window: Window, resampling: Resampling) -> np.ndarray:
        """The window of the asset's entry (filled first if missing or damaged). The local file is opened
        for each window: closing it lets GDAL drop its blocks, each read once, so memory stays flat."""
        path = entry_path(self.folder, href, grid, resampling)
        if path not in self._ready:
            self._entry(href, grid, resampling, path)
            self._ready.add(path)
        with rasterio.open(path) as dataset:
            return dataset.read(1, window=window)

    def _entry(self, href: str, grid: Grid, resampling: Resampling, path: Path) -> None:
        url = unsigned(href)
        if not is_cached(path, check_hash=True):
            if path.exists() or path.with_suffix(".json").exists():
                self.log(f"stars fetch: the cached copy of {url} is damaged (cut short or changed); reading it again")
            self._fill(href, grid, resampling, path)
            self.reads.add(url)
        elif url not in self.reads:
            self.hits.add(url)

    def _fill(self, href: str, grid: Grid, resampling: Resampling, path: Path) -> None:
        """The asset warped onto the whole grid, window by window as read_block reads, into `path`."""

        path.parent.mkdir(parents=True, exist_ok=True)
        self._describe(grid, path.parent / "grid.json")
        profile = {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": 1, "dtype": "float32",
                   "crs": grid.crs, "transform": grid.transform, "nodata": float("nan"), "tiled": True,
                   "blockxsize": 256, "blockysize": 256, "compress": "zstd", "predictor": 3}
        with atomic_path(path) as tmp:
            with open_warped(href, grid, resampling) as warped, rasterio.open(tmp, "w", **profile) as dst:
                for window in blocks(grid):
                    dst.write(warped.read(window), 1, window=window)
                    self.tick()
                dst.update_tags(href=unsigned(href), resampling=resampling.name)
            record = {"href": unsigned(href), "resampling": resampling.name, "size": tmp.stat().st_size,
                      "sha256": sha256(tmp)}
        with atomic_path(path.with_suffix(".json")) as side:  # last: the entry is whole once this is there
            side.write_text(json.dumps(record, indent=1))

    @staticmethod
    def _describe(grid: Grid, where: Path) -> None:
        if where.exists():
            return
        with atomic_path(where) as tmp:
            tmp.write_text(json.dumps({"crs": grid.crs.to_string(), "transform": list(grid.transform)[:6],
                                       "width": grid.width, "height": grid.height,
                                       "bounds_lonlat": list(transform_bounds(grid.crs, LONLAT, *grid.bounds))},
                                      indent=1))

    def noted(self, roles) -> dict:
        """For provenance: the ids of the items every asset of which came from the cache, and of those
        read from their hosts by this fetch (a series' dates kept from an earlier run are in neither)."""
        hits, reads = [], []
        for role in roles:
            for item in role.items:
                urls = {unsigned(item["assets"][k]["href"]) for k in role.source.assets if k in item["assets"]}
                if urls & self.reads:
                    reads.append(item["id"])
                elif urls and urls <= self.hits:
                    hits.append(item["id"])
        return {"folder": str(self.folder) if self.kept else None, "items_from_cache": hits, "items_read": reads}


def provenance_note(roles) -> dict:
    """{"cache": ...} for a provenance file (see WarpedAssets.noted), {} outside warped_assets."""
    assets = CURRENT.get()
    return {"cache": assets.noted(roles)} if assets is not None else {}


@contextmanager
def warped_assets(folder: str | os.PathLike | None, log: Callable[[str], None] = print,
                  tick: Callable[[], None] = lambda: None, scratch: str | os.PathLike | None = None
                  ) -> Iterator[WarpedAssets]:
    """read_block reads through `folder` inside the block. `folder` None keeps nothing: a temporary
    folder inside `scratch` (default the system's), removed at the end."""
    temporary = None
    try:
        if folder is None:
            Path(scratch or tempfile.gettempdir()).mkdir(parents=True, exist_ok=True)
            temporary = tempfile.mkdtemp(prefix=".stars-fetch-", dir=scratch)
        else:
            Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"the fetch cache {folder or scratch} cannot be written ({exc.strerror}): name another "
                         f"folder with --cache, or --no-cache") from None
    assets = WarpedAssets(Path(folder or temporary), log, tick, kept=temporary is None)
    token = CURRENT.set(assets)
    try:
        yield assets
    finally:
        CURRENT.reset(token)
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
