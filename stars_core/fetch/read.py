"""Windowed reads of cloud-optimised GeoTIFFs over HTTP, warped onto the grid on the fly (GDAL's
/vsicurl through rasterio's WarpedVRT): only the blocks under the window travel, never a whole scene.

    with http_env():                                   # retries with backoff on 429/5xx, timeouts
        block = read_block(href, grid, window)         # (h, w) float32, NaN where the asset has no data

Inside cache.warped_assets (what `stars fetch` runs under) each asset is opened once and warped whole
onto the grid into the cache, and read_block reads its windows from there.

GDAL retries 429, 500, 502, 503 and 504 itself (GDAL_HTTP_MAX_RETRY times, the delay growing from
GDAL_HTTP_RETRY_DELAY; both in GDAL 3.6); what still fails comes back as one line naming the URL.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import rasterio
import rasterio.env
import rasterio.errors
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..errors import InputError
from .aoi import Grid
from .cache import CURRENT

RETRIES, RETRY_DELAY_S, TIMEOUT_S = 5, 1.0, 60


@contextmanager
def http_env(retries: int = RETRIES, delay_s: float = RETRY_DELAY_S, timeout_s: int = TIMEOUT_S) -> Iterator[None]:
    """GDAL's HTTP settings for the reads inside the block."""
    with rasterio.Env(GDAL_HTTP_MAX_RETRY=str(retries), GDAL_HTTP_RETRY_DELAY=str(delay_s),
                      GDAL_HTTP_TIMEOUT=str(timeout_s), GDAL_HTTP_CONNECTTIMEOUT=str(min(timeout_s, 15)),
                      GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.tiff,.TIF",
                      VSI_CACHE="TRUE"):
        yield


def explain(href: str, exc: Exception) -> InputError:
    """One line for a failed read: what the host answered and what to do."""
    text = " ".join(str(exc).split())
    code = re.search(r"HTTP response code: (\d+)", text)
    where = href.split("?")[0]
    if code and code.group(1) == "403":
        return InputError(f"{where} refused the read (HTTP 403): a signed URL has expired or the host denies "
                          f"access; search again to get fresh signatures")
    if code:
        return InputError(f"{where} answered HTTP {code.group(1)} after {_retries()} retries: the host is busy or "
                          f"down; try again later")
    if re.search(r"timed out|timeout", text, re.I):
        return InputError(f"{where} did not answer in time ({text[:120]}): check the connection, or try again later")
    return InputError(f"could not read {where}: {text[:200]}")


def signer(kind: str) -> Callable[[str], str]:
    """How to sign an asset URL before reading it: "planetary-computer" asks the planetary-computer
    package for a SAS token (cached, renewed when under a minute is left, so a long fetch re-signs);
    "" leaves URLs as they are."""
    if not kind:
        return lambda href: href
    try:
        import planetary_computer
    except ImportError:
        raise InputError("Planetary Computer's assets need signed URLs: pip install \"planetary-computer==1.0.0\" "
                         "(the `fetch` extra installs it)")
    return planetary_computer.sign


def _retries() -> str:
    try:
        return rasterio.env.getenv().get("GDAL_HTTP_MAX_RETRY", "0")
    except rasterio.errors.EnvError:  # outside http_env: GDAL's default, no retry
        return "0"


@contextmanager
def open_warped(href: str, grid: Grid, resampling: Resampling = Resampling.nearest) -> Iterator[WarpedVRT]:
    """The asset's first band warped onto the grid (float32, its own no data), opened once."""
    try:
        src = rasterio.open(href)
    except rasterio.errors.RasterioIOError as exc:
        raise explain(href, exc) from None
    with src, WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                        resampling=resampling, src_nodata=src.nodata, nodata=src.nodata, dtype="float32",
                        add_alpha=False) as vrt:
        yield vrt


def read_window(vrt: WarpedVRT, href: str, window: Window) -> np.ndarray:
    """One window of an open_warped asset as float32, NaN where it has no data."""
    try:
        data = vrt.read(1, window=window, masked=True)
    except rasterio.errors.RasterioIOError as exc:
        raise explain(href, exc) from None
    return data.filled(np.nan).astype(np.float32)


def read_block(href: str, grid: Grid, window: Window, resampling: Resampling = Resampling.nearest,
               add: float = 0.0) -> np.ndarray:
    """The asset's first band over `window` of the grid, as float32 with NaN for no data; `add` is
    added to valid values (an offset to the entry's units). Inside cache.warped_assets the asset is
    warped whole onto the grid into the cache on its first read, and read from there after."""
    assets = CURRENT.get()
    if assets is not None:
        out = assets.read(href, grid, window, resampling)
    else:
        with open_warped(href, grid, resampling) as vrt:
            out = read_window(vrt, href, window)
    if add:
        out += np.float32(add)
    return out


def blocks(grid: Grid, side: int = 512) -> Iterator[Window]:
    """The grid in square windows, row by row: memory stays flat in the area's size."""
    for row in range(0, grid.height, side):
        for col in range(0, grid.width, side):
            yield Window(col, row, min(side, grid.width - col), min(side, grid.height - row))
