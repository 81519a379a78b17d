"""`stars fetch pair`: Sentinel-1, Sentinel-2 and land-cover labels for an area, from STAC catalogues,
on one grid, ready for `stars train`; `stars fetch series`: one Sentinel-1 raster per acquisition day,
ready for `stars segment-series`. It first lists the items, dates, orbits and cloud cover and the
megabytes and pixels to read, and refuses more than --max-gb, before any pixel is read (`--dry-run`
stops there)."""
from __future__ import annotations

import shlex
from pathlib import Path


EPILOG = """examples:
  stars fetch pair --aoi 10.30,46.90,10.36,46.94 --start 2024-04-01 --end 2024-04-30 --out pair --dry-run
  stars fetch pair --aoi fields.gpkg --start 2024-06-01 --end 2024-06-30 --out pair --orbit ascending --dry-run
  (Planetary Computer by default; --stac-url names another STAC API with the same kind of items)
"""
EPILOG_SERIES = """examples:
  stars fetch series --aoi 10.30,46.90,10.36,46.94 --start 2024-04-01 --end 2024-09-30 --orbit ascending --out s1
  stars segment-series model.stars maps --dates s1/dates.csv
"""


def _common(p, what: str) -> None:
    p.add_argument("--aoi", required=True, help="minx,miny,maxx,maxy (lon/lat unless --aoi-crs), a vector file "
                   "(its features' union) or a raster (its footprint)")
    p.add_argument("--aoi-crs", help="the CRS of a bbox --aoi (e.g. EPSG:32632; default lon/lat)")
    p.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    p.add_argument("--end", required=True, help="last date, YYYY-MM-DD (inclusive)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--dry-run", action="store_true", help="list what would be read, read no pixel")
    p.add_argument("--max-gb", type=float, default=2.0, help="refuse a fetch that would read more (default 2)")
    p.add_argument("--crs", help="output CRS (default: the UTM zone of the area's centre)")
    p.add_argument("--res", type=float, default=10.0, help="output pixel size in CRS units (default 10)")
    p.add_argument("--grid", metavar="RASTER", help="use this raster's grid (CRS, pixels, extent)")
    p.add_argument("--orbit", choices=("ascending", "descending", "both"), default="both",
                   help=f"Sentinel-1 orbit direction (default both; one direction keeps one viewing geometry{what})")
    p.add_argument("--relative-orbit", action="append", metavar="N[,N...]", help="only these Sentinel-1 relative "
                   "orbits (repeat or comma-separate; the dry run lists each item's): one track, one geometry")
    p.add_argument("--retries", type=int, default=5, help="retries of a request (search, token, read) the host "
                   "answers with 429 or 5xx, the wait growing each time (default 5)")
    p.add_argument("--timeout", type=int, default=60, help="seconds a request may wait for the host (default 60)")
    p.add_argument("--stac-url", help="search this STAC API instead of each source's own (same kind of items)")
    p.add_argument("--cache", metavar="DIR", help="keep the assets read, warped onto the grid, in this folder "
                   "(default ~/.cache/stars/fetch, or $STARS_CACHE_DIR/fetch): a rerun reads nothing twice")
    p.add_argument("--no-cache", action="store_true", help="keep nothing between runs (assets are warped into a "
                   "temporary folder inside --out, removed at the end)")


def add_parsers(sub) -> None:
    import argparse

    from ..fetch.sources import DEFAULTS, SOURCES

    fp = sub.add_parser("fetch", help="get Sentinel-1, Sentinel-2 and land-cover labels for an area from STAC "
                        "catalogues", description="Search STAC catalogues for an area and a date range and read the "
                        "assets onto one grid.")
    fs = fp.add_subparsers(dest="fetch_command", required=True)
    pair = fs.add_parser("pair", help="a Sentinel-1 composite, a cloud-free Sentinel-2 composite and labels",
                         epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(pair, "")
    pair.add_argument("--max-cloud", type=float, default=60.0, help="skip Sentinel-2 items cloudier than this "
                      "percent (default 60)")
    for role in ("sar", "optical", "labels"):
        names = [n for n, s in SOURCES.items() if s.role == role]
        pair.add_argument(f"--{role}-source", choices=names, default=DEFAULTS[role], help=f"default {DEFAULTS[role]}")
        _collection(pair, role)
    pair.add_argument("--min-label-coverage", type=float, default=1.0, help="the fraction of the area the labels' "
                      "items must cover, else the fetch is refused before any pixel is read (default 1: all of it; "
                      "e.g. 0.6 trains on the covered part, the rest no data)")
    pair.add_argument("--min-clear", type=int, default=1, help="clear Sentinel-2 looks a pixel needs, else no "
                      "data (default 1)")
    series = fs.add_parser("series", help="one Sentinel-1 raster per acquisition day, for stars segment-series",
                           epilog=EPILOG_SERIES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(series, ": mixing ascending and descending makes spurious change")
    names = [n for n, s in SOURCES.items() if s.role == "sar"]
    series.add_argument("--sar-source", choices=names, default=DEFAULTS["sar"], help=f"default {DEFAULTS['sar']}")
    _collection(series, "sar")


def _collection(p, role: str) -> None:
    p.add_argument(f"--{role}-collection", metavar="NAME", help=f"search this collection instead of the "
                   f"--{role}-source's own (same kind of items: the same asset names), e.g. at the --stac-url")


def _config(args):
    """The core's FetchConfig from the command line (its fields are the options' names)."""
    from dataclasses import fields

    from ..fetch.run import FetchConfig

    return FetchConfig(**{f.name: getattr(args, f.name) for f in fields(FetchConfig) if hasattr(args, f.name)})


def cmd_fetch(args) -> int:
    from ..fetch.run import fetch
    from ..progress import progress_bar
    from .stop import STOP

    bar = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(progress_bar(total, "block", what="fetching: "))
        bar[0].update(1)

    try:
        done = fetch(args.fetch_command, _config(args), Path(args.out), dry_run=args.dry_run, log=print,
                     progress=progress, cancel=STOP)
    finally:
        for b in bar:
            b.close()
    if args.dry_run:
        print(f"dry run: nothing read or written; without --dry-run the {args.fetch_command} is written into "
              f"{args.out}")
        return 0
    return _said_pair(args, done["facts"]) if args.fetch_command == "pair" else _said_series(args, done["facts"])


def _said_pair(args, facts: dict) -> int:
    from ..fetch.pair import OUTPUTS

    out = Path(args.out)
    print(f"optical: {facts['optical_clear_fraction']:.0%} of the pixels have at least {args.min_clear} clear "
          f"look(s) (no data elsewhere); labels cover {facts['labels_covered_fraction']:.0%} of the grid")
    q = {name: shlex.quote(str(out / name)) for name in ("sar.tif", "optical.tif", "labels.tif", "classes.csv",
                                                         "model.stars")}  # a line a shell runs as printed
    print(f"wrote {', '.join(OUTPUTS)} into {out}; ready: stars train --m1 {q['sar.tif']} --m2 "
          f"{q['optical.tif']} --labels {q['labels.tif']} --class-table {q['classes.csv']} --ignore-value 0 "
          f"--out {q['model.stars']}")
    return 0


def _said_series(args, done: dict) -> int:
    low = {d: c for d, c in done["coverage"].items() if c < 0.99}
    if low:
        print("partial coverage (fraction of the grid; no data elsewhere): "
              + ", ".join(f"{d} {c:.0%}" for d, c in low.items()))
    out = Path(args.out)
    again = f" ({len(done['remade'])} made again, said above)" if done["remade"] else ""
    print(f"wrote {len(done['written'])} date(s){again}, kept {len(done['kept'])} already there, into {out}; ready: "
          f"stars segment-series MODEL MAPS --dates {out / 'dates.csv'}")
    return 0


HANDLERS = {"fetch": cmd_fetch}
