"""One call from an area and dates to files: what `stars fetch pair|series` and the QGIS algorithms
"Get Sentinel-1 and Sentinel-2 for an area" and "Get a Sentinel-1 series for an area" run.

    result = fetch("pair", FetchConfig(aoi="10.30,46.90,10.36,46.94", start="2024-04-01", end="2024-04-30"),
                   out, dry_run=False, log=print, progress=lambda done, total: ..., cancel=stopped)

It searches (no pixel read), says the plan line by line through `log`, refuses more than `max_gb`,
then (unless `dry_run`) reads block by block, `progress(done, total)` after each block and `cancel`
polled there: nothing half-written. `proxy` sends every request, the search's (pystac-client, requests) and the
reads' (GDAL's curl), through an HTTP proxy, as QGIS's network settings name it.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..errors import Cancelled, InputError
from .cache import mark_cached
from .plan import Plan, Request, plan_pair
from .series import plan_series, series_dates

PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")


@dataclass(frozen=True)
class FetchConfig:
    """What a fetch asks for; the names are `stars fetch`'s options (--aoi-crs is aoi_crs)."""
    aoi: str
    start: str
    end: str
    aoi_crs: str | None = None
    crs: str | None = None
    res: float = 10.0
    grid: str | None = None
    orbit: str = "both"
    relative_orbit: str | list | None = None  # Sentinel-1 relative orbits: 117, "117,168" or a list; None: any
    max_gb: float = 2.0
    max_cloud: float = 60.0
    min_clear: int = 1
    retries: int = 5
    timeout: int = 60
    stac_url: str | None = None
    sar_source: str = "pc-sentinel-1-rtc"
    optical_source: str = "pc-sentinel-2-l2a"
    labels_source: str = "pc-esa-worldcover"
    sar_collection: str | None = None  # another collection of the role's source (same kind of items)
    optical_collection: str | None = None
    labels_collection: str | None = None
    min_label_coverage: float = 1.0  # the fraction of the area the labels' items must cover, else refused
    proxy: str | None = None  # "http://[user:password@]host:port"; None: the environment's, if any
    no_proxy: str = ""  # hosts that bypass the proxy, comma-separated
    cache: str | None = None  # the fetch cache's folder; None: cache.default_folder()
    no_cache: bool = False  # keep nothing: assets warped into a temporary folder inside the output folder


def request_for(kind: str, cfg) -> Request:
    """The search request of a pair or a series; `cfg` a FetchConfig or the command line's arguments."""
    from .aoi import output_grid, parse_aoi
    from .plan import parse_relative_orbits
    from .search import parse_date
    from .sources import source

    start, end = parse_date(cfg.start, "--start"), parse_date(cfg.end, "--end")
    if end < start:
        raise InputError(f"--end {cfg.end} is before --start {cfg.start}: swap them")
    if not cfg.max_gb > 0:
        raise InputError(f"--max-gb must be positive, got {cfg.max_gb:g}")
    min_clear = getattr(cfg, "min_clear", 1)
    coverage = getattr(cfg, "min_label_coverage", 1.0)
    if not 0 <= coverage <= 1:
        raise InputError(f"--min-label-coverage must be between 0 and 1, got {coverage:g}")
    if min_clear < 1 or cfg.retries < 0 or cfg.timeout < 1:
        raise InputError(f"--min-clear must be at least 1, --retries at least 0 and --timeout at least 1 s, got "
                         f"{min_clear}, {cfg.retries} and {cfg.timeout}")
    area = parse_aoi(cfg.aoi, cfg.aoi_crs)
    grid = output_grid(area, crs=cfg.crs, res=cfg.res, like=cfg.grid)
    roles = ("sar", "optical", "labels") if kind == "pair" else ("sar",)
    sources = {role: source(getattr(cfg, f"{role}_source"), cfg.stac_url, getattr(cfg, f"{role}_collection", None))
               for role in roles}
    return Request(area, grid, start.isoformat(), end.isoformat(), sources, cfg.orbit, getattr(cfg, "max_cloud", 60.0),
                   parse_relative_orbits(getattr(cfg, "relative_orbit", None)))


@contextmanager
def proxy_env(proxy: str | None, no_proxy: str = "") -> Iterator[None]:
    """Every HTTP request inside the block through `proxy`: the environment that requests and curl
    read, and GDAL's GDAL_HTTP_PROXY (set for the block, restored after). None changes nothing."""
    if not proxy:
        yield
        return
    import rasterio

    saved = {k: os.environ.get(k) for k in (*PROXY_VARIABLES, "no_proxy", "NO_PROXY")}
    os.environ.update({k: proxy for k in PROXY_VARIABLES})
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = no_proxy
    try:
        with rasterio.Env(GDAL_HTTP_PROXY=proxy):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_before_search(kind: str, cfg, request: Request, out: Path) -> None:
    """Said before any search: a missing package, an output that would destroy an input."""
    from ..files import check_outputs
    from .pair import OUTPUTS
    from .read import signer

    for entry in request.sources.values():
        signer(entry.signing)
    names = OUTPUTS if kind == "pair" else ("dates.csv", "provenance.json")
    check_outputs({"--aoi": cfg.aoi if Path(cfg.aoi).exists() else None, "--grid": cfg.grid},
                  {name: out / name for name in names})


def fetch(kind: str, cfg: FetchConfig, out: str | os.PathLike, dry_run: bool = False,
          log: Callable[[str], None] = print, progress: Callable[[int, int], None] = lambda done, total: None,
          cancel: Callable[[], bool] = lambda: False) -> dict:
    """Plan, say, check the size and (unless `dry_run`) write the pair or the series into `out`.
    Returns {"plan", "summary": lines said, "facts": the pair's facts or the series' record}."""
    if kind not in ("pair", "series"):
        raise InputError(f"unknown fetch {kind!r}: pair or series")
    from .search import network

    out = Path(out)
    with proxy_env(cfg.proxy, cfg.no_proxy), network(cfg.retries, cfg.timeout):
        request = request_for(kind, cfg)
        if not dry_run:
            _check_before_search(kind, cfg, request, out)
        if request.area.note:
            log(f"stars fetch: {request.area.note}")
        plan = plan_pair(request)
        dated = series_dates(plan, out) if kind == "series" else None  # once: it opens every date's raster
        said = plan_series(plan, out, dated) if kind == "series" else []
        folder = cache_folder(cfg)
        missing, reads = mark_cached(plan, folder)
        lines = plan.summary() + said + [
            f"cache: {folder}, {reads - missing} of {reads} asset(s) already there" if folder
            else "cache: none (--no-cache)"]
        for line in lines:
            log(line)
        plan.check_size(cfg.max_gb)
        plan.check_labels(cfg.min_label_coverage)
        if dry_run:
            return {"plan": plan, "summary": lines, "facts": {}}
        return {"plan": plan, "summary": lines, "facts": _write(kind, cfg, plan, out, dated, missing, progress,
                                                                cancel, log)}


def cache_folder(cfg) -> Path | None:
    """--cache, else the per-user default; None with --no-cache."""
    from .cache import default_folder

    if getattr(cfg, "no_cache", False):
        return None
    return Path(cfg.cache).expanduser() if getattr(cfg, "cache", None) else default_folder()


def blocks_to_read(plan: Plan, missing: int, dated: tuple | None) -> int:
    """The blocks a write reads: blocks per raster times the output rasters (the pair's three, or
    the series' dates to write, `dated` from series.series_dates) and the `missing` assets (each
    warped whole into the cache first)."""
    from .read import blocks

    per = len(list(blocks(plan.request.grid)))
    outputs = 3 if dated is None else sum(map(bool, dated[2].values()))
    return (outputs + missing) * per


def _write(kind: str, cfg, plan: Plan, out: Path, dated: tuple | None, missing: int, progress, cancel,
           log) -> dict:
    from .cache import warped_assets
    from .pair import write_pair
    from .read import http_env
    from .series import write_series

    total, done = blocks_to_read(plan, missing, dated), [0]

    def step() -> None:
        done[0] += 1
        progress(done[0], total)
        if cancel():
            raise Cancelled("fetch stopped; nothing half-written (a series keeps its finished dates; a rerun reads "
                            "only what is missing)")

    with http_env(retries=cfg.retries, timeout_s=cfg.timeout), \
            warped_assets(cache_folder(cfg), log=log, tick=step, scratch=out) as assets:
        if kind == "pair":
            facts = write_pair(plan, out, min_clear=cfg.min_clear, tick=step)
        else:
            facts = write_series(plan, out, dated, step)
    log(f"cache: {len(assets.hits)} asset(s) taken from {assets.folder}, {len(assets.reads)} read from their "
        f"hosts" if assets.kept else f"cache: none (--no-cache); {len(assets.reads)} asset(s) read from their hosts")
    return facts
