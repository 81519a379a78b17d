"""STAC search with pystac-client, the API's own errors surfaced in one line.

    api = open_api(url)                                         # InputError naming the URL if unreachable
    items = search(api, source, area, "2024-04-01", "2024-04-30", query={"sat:orbit_state": {"eq": "ascending"}})

Items come back as plain dicts (the API's JSON), newest last. A wrong collection name lists the API's
collections; no items says which collection, dates and area were searched (and, when the same search
with longitude and latitude swapped finds items, that they may be swapped); more than MAX_ITEMS items is
refused in one line (a shorter date range or a smaller area), never cut short silently.

Every request (the searches and Planetary Computer's token requests, read.py) is retried on 429 and 5xx
with a growing wait (urllib3's Retry, honouring Retry-After), and waits at most the timeout:
`network(retries, timeout_s)` sets both for the block (`stars fetch --retries/--timeout`).
"""
from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from ..errors import InputError
from .aoi import Area
from .sources import Source

RETRIES, TIMEOUT_S, BACKOFF_S = 5, 60, 0.5
RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_ITEMS = 2000  # of one collection in one search (a year of Sentinel-1 over a large area is a few hundred)
NETWORK: ContextVar[tuple[int, float]] = ContextVar("stars_fetch_network", default=(RETRIES, TIMEOUT_S))


@contextmanager
def network(retries: int = RETRIES, timeout_s: float = TIMEOUT_S) -> Iterator[None]:
    """Retries and timeout of the searches and token requests inside the block."""
    token = NETWORK.set((retries, timeout_s))
    try:
        yield
    finally:
        NETWORK.reset(token)


def retry_policy():
    """urllib3's Retry for the current `network`: 429 and 5xx retried with a growing wait (Retry-After
    honoured), POST too (a search changes nothing), the last answer raised as an error; a connection
    refused or a name not found is tried twice at most (offline: one line soon)."""
    from urllib3.util.retry import Retry

    retries, _ = NETWORK.get()
    return Retry(total=retries, connect=min(retries, 1), backoff_factor=BACKOFF_S, status_forcelist=RETRY_STATUS,
                 allowed_methods=None, raise_on_status=True)


def _client():
    try:
        from pystac_client import Client
        from pystac_client.exceptions import APIError
    except ImportError:
        raise InputError("stars fetch needs pystac-client: pip install \"pystac-client==0.9.1\" (the `fetch` extra: "
                         "pip install \"stars[fetch]\"; the in-QGIS installer installs it too; it needs Python 3.10 "
                         "or later)")
    return Client, APIError


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def open_api(url: str):
    """The pystac-client Client of a STAC API (retries and timeout of the current `network`), or an
    InputError naming the URL."""
    Client, APIError = _client()
    from pystac_client.stac_api_io import StacApiIO

    timeout = NETWORK.get()[1]
    try:  # Client.open passes its own timeout on to the StacApiIO: both given
        return Client.open(url, stac_io=StacApiIO(timeout=timeout, max_retries=retry_policy()), timeout=timeout)
    except APIError as exc:
        raise InputError(f"the STAC API at {url} cannot be reached or answered an error ({_one_line(exc)}): check "
                         f"the URL, your connection and proxy settings")


def check_collection(api, url: str, collection: str) -> None:
    """Refuse a collection the API does not serve, listing those it does."""
    _, APIError = _client()
    try:
        names = sorted(c.id for c in api.get_collections())
    except APIError as exc:
        raise InputError(f"the STAC API at {url} did not list its collections ({_one_line(exc)})")
    if collection not in names:
        shown = ", ".join(names[:40]) + (f" and {len(names) - 40} more" if len(names) > 40 else "")
        raise InputError(f"the STAC API at {url} has no collection {collection!r}: it serves {shown}")


def parse_date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise InputError(f"{what} {text!r} is not a date: give YYYY-MM-DD")


def _items(api, source: Source, geometry: dict, when: str | None, query: dict | None, cap: int) -> list[dict]:
    """Every page of the search, up to `cap` + 1 items (one more than the cap tells it was reached)."""
    _, APIError = _client()
    try:
        found = api.search(collections=[source.collection], intersects=geometry, datetime=when, query=query,
                           max_items=cap + 1, limit=min(cap + 1, 100))
        return list(found.items_as_dicts())
    except APIError as exc:
        raise InputError(f"the STAC API at {source.api} refused the search of {source.collection} "
                         f"({_one_line(exc)})")


def search(api, source: Source, area: Area, start: str | None, end: str | None, query: dict | None = None,
           limit: int | None = None) -> list[dict]:
    """Items of `source` over `area` between the dates (inclusive; None: any date), oldest first; more
    than `limit` (default MAX_ITEMS) refused."""
    cap = MAX_ITEMS if limit is None else limit
    check_collection(api, source.api, source.collection)
    when = f"{start}T00:00:00Z/{end}T23:59:59Z" if start and end else None
    dates = f"from {start} to {end}" if when else "at any date"
    items = _items(api, source, area.geometry, when, query, cap)
    if len(items) > cap:
        raise InputError(f"more than {cap} {source.collection} items at {source.api} {dates} over the area: the "
                         f"fetch would miss some; give a shorter date range or a smaller area")
    if not items:
        extra = f" with {query}" if query else ""
        raise InputError(f"no {source.collection} items at {source.api} {dates}{extra} over the area "
                         f"{', '.join(f'{v:.4f}' for v in area.bounds)} (lon/lat): widen the dates or check the area"
                         + _swapped(api, source, area, when, query))
    return sorted(items, key=item_time)


def _swapped(api, source: Source, area: Area, when: str | None, query: dict | None) -> str:
    """A hint when the area has items with longitude and latitude swapped (a bbox given lat,lon)."""
    w, s, e, n = area.bounds
    if not all(abs(v) <= 90 for v in (w, e)):
        return ""
    box = {"type": "Polygon", "coordinates": [[(s, w), (n, w), (n, e), (s, e), (s, w)]]}
    if not _items(api, source, box, when, query, 0):
        return ""
    return (f"; with longitude and latitude swapped the area has items: if it was given lat,lon, give it in "
            f"lon,lat order minx,miny,maxx,maxy: {s},{w},{n},{e}")


def item_time(item: dict) -> str:
    p = item.get("properties", {})
    return p.get("datetime") or p.get("start_datetime") or ""
