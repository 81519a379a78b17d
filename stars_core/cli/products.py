"""The land-cover products of a map: `stars clean` and `stars polygons`."""
from __future__ import annotations

from ..errors import InputError
from .common import mmu_value, mmu_arguments, simplify_argument
from .stop import STOP


def _clean_parser(sub) -> None:
    cl = sub.add_parser("clean", help="clean a classified map to a minimum mapping unit",
                        description="Patches (connected pixels of one class) smaller than the minimum mapping unit "
                        "merge into their largest neighbour (GDAL's sieve); no-data stays no-data and never grows; "
                        "the colour table, class names, overviews and .qml are kept. Memory follows the number of "
                        "patches, not the map's size.")
    cl.add_argument("map", help="classified raster (e.g. from `stars segment`, or a mosaic .vrt)")
    cl.add_argument("output", help="cleaned GeoTIFF to write")
    mmu_arguments(cl, "the map")


def cmd_clean(args) -> int:
    from ..product.mmu import clean_map

    mmu = mmu_value(args)
    if mmu is None:
        raise InputError("give the minimum mapping unit: --mmu AREA (e.g. 0.5ha) or --mmu-pixels N")
    result = clean_map(args.map, args.output, mmu, args.connectivity, cancel=STOP, log=print)
    print(f"wrote {args.output} ({result['changed']:,} pixels changed class)")
    return 0


def _polygons_parser(sub) -> None:
    pg = sub.add_parser("polygons", help="a classified map as polygons with class names and areas",
                        description="One polygon per patch (GDAL's polygonize) with its class value, class name and "
                        "area in m2 and ha, written to a GeoPackage with a QGIS style in the class colours. Neighbours "
                        "share their boundaries (no gaps, no overlaps) and holes are kept; --min-area cleans the map to "
                        "that unit first, so small patches merge into their neighbours instead of leaving gaps.")
    pg.add_argument("map", help="classified raster (e.g. from `stars segment`)")
    pg.add_argument("output", help="GeoPackage to write (.gpkg)")
    pg.add_argument("--min-area", metavar="AREA", help="minimum polygon area (0.5ha, 500m2, 12px)")
    simplify_argument(pg)
    pg.add_argument("--connectivity", type=int, choices=[4, 8], default=8,
                    help="pixels of a polygon touch by their sides (4) or also their corners (8, default)")
    pg.add_argument("--class-table", help="CSV/JSON class table (default: the one stored in the map)")


def cmd_polygons(args) -> int:
    from ..product.polygons import polygonize

    result = polygonize(args.map, args.output, args.min_area, args.connectivity, args.class_table, cancel=STOP,
                        log=print, simplify=args.simplify)
    print(f"wrote {args.output}: {result['polygons']:,} polygons, {result['area_m2'] / 10_000:,.1f} ha")
    return 0


def add_parsers(sub) -> None:
    _clean_parser(sub)
    _polygons_parser(sub)


HANDLERS = {"clean": cmd_clean, "polygons": cmd_polygons}
