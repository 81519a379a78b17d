"""Windowed reads of cloud-optimised GeoTIFFs over HTTP, warped onto the grid on the fly (GDAL's
/vsicurl through rasterio's WarpedVRT): only the blocks under the window travel, never a whole scene.

    with http_env():                                   # retries with backoff on 429/5xx, timeouts
        block = read_block(href, grid, window)         # (h, w) float32, NaN where the asset has no data

Inside cache.warped_assets (what `stars fetch` runs under) each asset is opened once and warped whole
onto the grid into the cache, and read_block reads its windows from there.

GDAL retries 429, 500, 502, 503 and 504 itself (GDAL_HTTP_MAX_RETRY times, the delay growing from
GDAL_HTTP_RETRY_DELAY; both in GDAL 3.6); what still fails comes back as one line naming the URL.

Planetary Computer's URLs are signed with a SAS token from its token service (the planetary-computer
package's settings: PC_SDK_SAS_URL, PC_SDK_SUBSCRIPTION_KEY), asked for here under the search's retries
and timeout (search.network; the package's own request has no timeout), kept in the package's token
cache. A read refused with 403 half-way (a token that expired or was revoked) is signed again with a
fresh token and tried once more before the "expired" line.
"""
from __future__ import annotations

import re
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import rasterio
import rasterio.env
import rasterio.errors
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..errors import InputError
from .aoi import Grid

RETRIES, RETRY_DELAY_S, TIMEOUT_S = 5, 1.0, 60


# Query parameters that sign a URL (Azure SAS, as Planetary Computer's; S3 and GCS presigned URLs):
# dropped from the fetch cache's key, so a new signature finds the same entry.
SIGNATURE = {"st", "se", "sp", "sv", "sr", "sig", "spr", "si", "skoid", "sktid", "skt", "ske", "sks", "skv", "sdd"}
SIGNATURE_PREFIXES = ("x-amz-", "x-goog-")


def unsigned(href: str) -> str:
    """The URL without its signature: the same asset signed again is the same entry."""
    parts = urlsplit(href)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k.lower() not in SIGNATURE and not k.lower().startswith(SIGNATURE_PREFIXES)]
    return urlunsplit(parts._replace(query=urlencode(kept)))


# the fetch cache of the running fetch (cache.warped_assets sets it; read_block reads through it)
CURRENT: ContextVar = ContextVar("stars_fetch_cache", default=None)


@contextmanager
def http_env(retries: int = RETRIES, delay_s: float = RETRY_DELAY_S, timeout_s: int = TIMEOUT_S) -> Iterator[None]:
    """GDAL's HTTP settings for the reads inside the block."""
    with rasterio.Env(GDAL_HTTP_MAX_RETRY=str(retries), GDAL_HTTP_RETRY_DELAY=str(delay_s),
                      GDAL_HTTP_TIMEOUT=str(timeout_s), GDAL_HTTP_CONNECTTIMEOUT=str(min(timeout_s, 15)),
                      GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", VSI_CACHE="TRUE"):
        # no CPL_VSIL_CURL_ALLOWED_EXTENSIONS: any name opens (.TIFF, .jp2, a signed URL's query);
        # EMPTY_DIR already spares the probes for side-car files
        yield


def explain(href: str, exc: Exception) -> InputError:
    """One line for a failed read: what the host answered and what to do."""
    text = " ".join(str(exc).split())
    code = re.search(r"HTTP response code: (\d+)", text)
    where = href.split("?")[0]
    if _refused(text):
        return InputError(f"{where} refused the read (HTTP 403): a signed URL has expired or the host denies "
                          f"access; search again to get fresh signatures")
    if code:
        return InputError(f"{where} answered HTTP {code.group(1)} after {_retries()} retries: the host is busy or "
                          f"down; try again later")
    if re.search(r"timed out|timeout", text, re.I):
        return InputError(f"{where} did not answer in time ({text[:120]}): check the connection, or try again later")
    return InputError(f"could not read {where}: {text[:200]}")


def signer(kind: str) -> Callable[[str], str]:
    """How to sign an asset URL before reading it: "planetary-computer" signs Planetary Computer's blob
    storage URLs with a SAS token (cached, renewed when under a minute is left, so a long fetch
    re-signs); "" leaves URLs as they are."""
    if not kind:
        return lambda href: href
    try:
        import planetary_computer  # noqa: F401
    except ImportError:
        raise InputError("Planetary Computer's assets need signed URLs: pip install \"planetary-computer==1.0.0\" "
                         "(the `fetch` extra installs it)")
    return sign_planetary_computer


SIGNED: dict[str, str] = {}  # URLs signed by sign_planetary_computer -> as they were before


def sign_planetary_computer(href: str, fresh: bool = False) -> str:
    """`href` signed as planetary_computer.sign_url signs it (blob storage URLs only), the token asked for
    under the current network settings; `fresh`: a new token even if the cached one looks valid."""
    from planetary_computer import sas
    from planetary_computer.settings import Settings
    from planetary_computer.utils import parse_blob_url

    parts = urlsplit(href)
    if not parts.netloc.endswith(sas.BLOB_STORAGE_DOMAIN) or parts.netloc.startswith("ai4edatasetspublicassets."):
        return href
    plain = unsigned(href)
    settings = Settings.get()
    account, container = parse_blob_url(urlsplit(plain))
    url = f"{settings.sas_url}/{account}/{container}"
    token = sas.TOKEN_CACHE.get(url)
    if fresh or token is None or token.ttl() < 60:
        token = sas.TOKEN_CACHE[url] = _token(url, settings.subscription_key, sas.SASToken)
    signed = token.sign(plain).href
    SIGNED[signed] = plain
    return signed


def _token(url: str, key: str | None, model):
    """A SAS token from the token service at `url`, or one line naming it."""
    import requests
    from requests.adapters import HTTPAdapter

    from .search import NETWORK, retry_policy

    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=retry_policy()))
        session.mount("https://", HTTPAdapter(max_retries=retry_policy()))
        try:
            answer = session.get(url, headers={"Ocp-Apim-Subscription-Key": key} if key else None,
                                 timeout=NETWORK.get()[1])
            answer.raise_for_status()
            return model(**answer.json())
        except (requests.RequestException, ValueError, TypeError) as exc:
            text = " ".join(str(exc).split())[:200]
            raise InputError(f"Planetary Computer's token service {url} gave no signing token ({text}): check the "
                             f"connection and proxy settings, try again later, or set PC_SDK_SUBSCRIPTION_KEY "
                             f"(a subscription key gets a higher rate limit)") from None


def resign(href: str) -> str | None:
    """`href` signed again with a fresh token, or None when it was not signed here."""
    plain = SIGNED.get(href)
    return sign_planetary_computer(plain, fresh=True) if plain else None


def _refused(text: str) -> bool:
    """GDAL's message for a read the host refused (403: an expired signature, or no access)."""
    return bool(re.search(r"HTTP (response|error) code:? 403\b", text))


def _retries() -> str:
    try:
        return rasterio.env.getenv().get("GDAL_HTTP_MAX_RETRY", "0")
    except rasterio.errors.EnvError:  # outside http_env: GDAL's default, no retry
        return "0"


class Warped:
    """An asset's first band warped onto the grid (float32, its own no data), opened once. A read the
    host refuses with 403 (an expired signature) signs the URL again with a fresh token, reopens and
    reads once more; the second failure is the one line."""

    def __init__(self, href: str, grid: Grid, resampling: Resampling):
        self.href, self.grid, self.resampling, self.resigned = href, grid, resampling, False
        self._stack = ExitStack()
        self.vrt = self._retry(self._open)

    def _open(self) -> WarpedVRT:
        self._stack.close()
        src = self._stack.enter_context(rasterio.open(self.href))
        return self._stack.enter_context(WarpedVRT(
            src, crs=self.grid.crs, transform=self.grid.transform, width=self.grid.width, height=self.grid.height,
            resampling=self.resampling, src_nodata=src.nodata, nodata=src.nodata, dtype="float32", add_alpha=False))

    def _retry(self, step: Callable):
        """step(); once more, after signing again with a fresh token, when the host refuses it with 403
        (a block read that fails says no HTTP code: any failure of a URL signed here is tried again)."""
        try:
            return step()
        except rasterio.errors.RasterioIOError as exc:
            refused = _refused(str(exc)) or step != self._open
            fresh = None if self.resigned or not refused else resign(self.href)
            if fresh is None:
                raise explain(self.href, exc) from None
        self.href, self.resigned = fresh, True
        if step != self._open:
            self.vrt = self._retry(self._open)
        return self._retry(step)

    def read(self, window: Window) -> np.ndarray:
        """One window as float32, NaN where the asset has no data."""
        data = self._retry(lambda: self.vrt.read(1, window=window, masked=True))
        return data.filled(np.nan).astype(np.float32)

    def close(self) -> None:
        self._stack.close()


@contextmanager
def open_warped(href: str, grid: Grid, resampling: Resampling = Resampling.nearest) -> Iterator[Warped]:
    """The asset warped onto the grid (Warped), closed at the end of the block."""
    warped = Warped(href, grid, resampling)
    try:
        yield warped
    finally:
        warped.close()


def read_block(href: str, grid: Grid, window: Window, resampling: Resampling = Resampling.nearest,
               add: float = 0.0) -> np.ndarray:
    """The asset's first band over `window` of the grid, as float32 with NaN for no data; `add` is
    added to valid values (an offset to the entry's units). Inside cache.warped_assets the asset is
    warped whole onto the grid into the cache on its first read, and read from there after."""
    assets = CURRENT.get()
    if assets is not None:
        out = assets.read(href, grid, window, resampling)
    else:
        with open_warped(href, grid, resampling) as warped:
            out = warped.read(window)
    if add:
        out += np.float32(add)
    return out


def blocks(grid: Grid, side: int = 512) -> Iterator[Window]:
    """The grid in square windows, row by row: memory stays flat in the area's size."""
    for row in range(0, grid.height, side):
        for col in range(0, grid.width, side):
            yield Window(col, row, min(side, grid.width - col), min(side, grid.height - row))
