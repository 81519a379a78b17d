"""STAC search with pystac-client, the API's own errors surfaced in one line.

    api = open_api(url)                                         # InputError naming the URL if unreachable
    items = search(api, source, area, "2024-04-01", "2024-04-30", query={"sat:orbit_state": {"eq": "ascending"}})

Items come back as plain dicts (the API's JSON), newest last. A wrong collection name lists the API's
collections; no items says which collection, dates and area were searched.
"""
from __future__ import annotations

import datetime as dt

from ..errors import InputError
from .aoi import Area
from .sources import Source

TIMEOUT_S = 30


def _client():
    try:
        from pystac_client import Client
        from pystac_client.exceptions import APIError
    except ImportError:
        raise InputError("stars fetch needs pystac-client: pip install \"pystac-client==0.9.1\" (the `fetch` extra: "
                         "pip install \"stars[fetch]\"; the in-QGIS installer installs it too)")
    return Client, APIError


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def open_api(url: str):
    """The pystac-client Client of a STAC API, or an InputError naming the URL."""
    Client, APIError = _client()
    try:
        return Client.open(url, timeout=TIMEOUT_S)
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


def search(api, source: Source, area: Area, start: str | None, end: str | None, query: dict | None = None,
           limit: int = 500) -> list[dict]:
    """Items of `source` over `area` between the dates (inclusive; None: any date), oldest first."""
    _, APIError = _client()
    check_collection(api, source.api, source.collection)
    when = f"{start}T00:00:00Z/{end}T23:59:59Z" if start and end else None
    try:
        found = api.search(collections=[source.collection], intersects=area.geometry, datetime=when, query=query,
                           max_items=limit, limit=min(limit, 100))
        items = list(found.items_as_dicts())
    except APIError as exc:
        raise InputError(f"the STAC API at {source.api} refused the search of {source.collection} "
                         f"({_one_line(exc)})")
    if not items:
        dates = f"from {start} to {end}" if when else "at any date"
        extra = f" with {query}" if query else ""
        raise InputError(f"no {source.collection} items at {source.api} {dates}{extra} over the area "
                         f"{', '.join(f'{v:.4f}' for v in area.bounds)} (lon/lat): widen the dates or check the area")
    return sorted(items, key=item_time)


def item_time(item: dict) -> str:
    p = item.get("properties", {})
    return p.get("datetime") or p.get("start_datetime") or ""
