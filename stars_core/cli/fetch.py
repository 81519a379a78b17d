"""`stars fetch pair`: Sentinel-1, Sentinel-2 and land-cover labels for an area, from STAC catalogues,
on one grid, ready for `stars train`. It first lists the items, dates, orbits and cloud cover and the
megabytes and pixels to read, and refuses more than --max-gb, before any pixel is read (`--dry-run`
stops there)."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError

EPILOG = """examples:
  stars fetch pair --aoi 10.30,46.90,10.36,46.94 --start 2024-04-01 --end 2024-04-30 --out pair --dry-run
  stars fetch pair --aoi fields.gpkg --start 2024-06-01 --end 2024-06-30 --out pair --orbit ascending --dry-run
  (Planetary Computer by default; --stac-url names another STAC API with the same kind of items)
"""


def add_parsers(sub) -> None:
    from ..fetch.sources import DEFAULTS, SOURCES

    fp = sub.add_parser("fetch", help="get Sentinel-1, Sentinel-2 and land-cover labels for an area from STAC "
                        "catalogues", description="Search STAC catalogues for an area and a date range and read the "
                        "assets onto one grid.")
    fs = fp.add_subparsers(dest="fetch_command", required=True)
    pair = fs.add_parser("pair", help="a Sentinel-1 composite, a cloud-free Sentinel-2 composite and labels",
                         epilog=EPILOG, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    pair.add_argument("--aoi", required=True, help="minx,miny,maxx,maxy (lon/lat unless --aoi-crs), a vector file "
                      "(its features' union) or a raster (its footprint)")
    pair.add_argument("--aoi-crs", help="the CRS of a bbox --aoi (e.g. EPSG:32632; default lon/lat)")
    pair.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    pair.add_argument("--end", required=True, help="last date, YYYY-MM-DD (inclusive)")
    pair.add_argument("--out", required=True, help="output folder")
    pair.add_argument("--dry-run", action="store_true", help="list what would be read, read no pixel")
    pair.add_argument("--max-gb", type=float, default=2.0, help="refuse a fetch that would read more (default 2)")
    pair.add_argument("--crs", help="output CRS (default: the UTM zone of the area's centre)")
    pair.add_argument("--res", type=float, default=10.0, help="output pixel size in CRS units (default 10)")
    pair.add_argument("--grid", metavar="RASTER", help="use this raster's grid (CRS, pixels, extent)")
    pair.add_argument("--orbit", choices=("ascending", "descending", "both"), default="both",
                      help="Sentinel-1 orbit direction (default both; one direction avoids geometry differences)")
    pair.add_argument("--max-cloud", type=float, default=60.0, help="skip Sentinel-2 items cloudier than this "
                      "percent (default 60)")
    for role in ("sar", "optical", "labels"):
        names = [n for n, s in SOURCES.items() if s.role == role]
        pair.add_argument(f"--{role}-source", choices=names, default=DEFAULTS[role], help=f"default {DEFAULTS[role]}")
    pair.add_argument("--min-clear", type=int, default=1, help="clear Sentinel-2 looks a pixel needs, else no "
                      "data (default 1)")
    pair.add_argument("--retries", type=int, default=5, help="retries of a read the host answers with 429 or 5xx, "
                      "the wait doubling from 1 s (default 5)")
    pair.add_argument("--timeout", type=int, default=60, help="seconds a read may wait for the host (default 60)")
    pair.add_argument("--stac-url", help="search this STAC API instead of each source's own (same kind of items)")


def _request(args):
    from ..fetch.aoi import output_grid, parse_aoi
    from ..fetch.plan import Request
    from ..fetch.search import parse_date
    from ..fetch.sources import source

    start, end = parse_date(args.start, "--start"), parse_date(args.end, "--end")
    if end < start:
        raise InputError(f"--end {args.end} is before --start {args.start}: swap them")
    if not args.max_gb > 0:
        raise InputError(f"--max-gb must be positive, got {args.max_gb:g}")
    if args.min_clear < 1 or args.retries < 0 or args.timeout < 1:
        raise InputError(f"--min-clear must be at least 1, --retries at least 0 and --timeout at least 1 s, got "
                         f"{args.min_clear}, {args.retries} and {args.timeout}")
    area = parse_aoi(args.aoi, args.aoi_crs)
    grid = output_grid(area, crs=args.crs, res=args.res, like=args.grid)
    sources = {role: source(getattr(args, f"{role}_source"), args.stac_url) for role in ("sar", "optical", "labels")}
    return Request(area, grid, start.isoformat(), end.isoformat(), sources, args.orbit, args.max_cloud)


def cmd_fetch(args) -> int:
    from ..fetch.plan import plan_pair

    request = _request(args)
    if not args.dry_run:  # said before any search: a missing package, an output that would destroy an input
        from ..fetch.pair import OUTPUTS
        from ..fetch.read import signer
        from ..files import check_outputs

        for entry in request.sources.values():
            signer(entry.signing)
        out = Path(args.out)
        check_outputs({"--aoi": args.aoi if Path(args.aoi).exists() else None, "--grid": args.grid},
                      {name: out / name for name in OUTPUTS})
    if request.area.note:
        print(f"stars fetch: {request.area.note}")
    plan = plan_pair(request)
    for line in plan.summary():
        print(line)
    plan.check_size(args.max_gb)
    if args.dry_run:
        print(f"dry run: nothing read or written; without --dry-run the pair is written into {args.out}")
        return 0
    return _write(args, plan)


def _write(args, plan) -> int:
    from ..errors import Cancelled
    from ..fetch.pair import OUTPUTS, write_pair
    from ..fetch.read import blocks, http_env
    from ..progress import progress_bar
    from .stop import STOP

    out = Path(args.out)
    bar = progress_bar(3 * len(list(blocks(plan.request.grid))), "block", what="fetching: ")

    def tick() -> None:
        bar.update(1)
        if STOP():
            raise Cancelled("fetch stopped; nothing written (a rerun starts again)")

    try:
        with http_env(retries=args.retries, timeout_s=args.timeout):
            facts = write_pair(plan, out, min_clear=args.min_clear, tick=tick)
    finally:
        bar.close()
    print(f"optical: {facts['optical_clear_fraction']:.0%} of the pixels have at least {args.min_clear} clear "
          f"look(s) (no data elsewhere); labels cover {facts['labels_covered_fraction']:.0%} of the grid")
    print(f"wrote {', '.join(OUTPUTS)} into {out}; ready: stars train --m1 {out / 'sar.tif'} --m2 "
          f"{out / 'optical.tif'} --labels {out / 'labels.tif'} --class-table {out / 'classes.csv'} --ignore-value 0 "
          f"--out {out / 'model.stars'}")
    return 0


HANDLERS = {"fetch": cmd_fetch}
