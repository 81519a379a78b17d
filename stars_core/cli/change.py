"""`stars change`: the from-to map of two class maps, its transition matrix and change polygons."""
from __future__ import annotations

import argparse

from .common import _mmu, _mmu_arguments
from .stop import STOP

EPILOG = """examples:
  stars change landcover_2023.tif landcover_2024.tif change.tif --csv matrix.csv --html change.html
  stars change a.tif b.tif change.tif --unchanged single --mmu 0.5ha --polygons change.gpkg
  stars change a.tif b.tif change.tif --groups groups.csv      # rows: from,to,group (names or values; * any)
then sample the change map and estimate change areas with intervals:
  stars sample change.tif sample.gpkg --min-per-class 30 ... (label from and to), stars assess ..."""


def add_parsers(sub) -> None:
    ch = sub.add_parser("change", help="land-cover change between two maps: from-to map, matrix, polygons",
                        description="The from-to map of two class maps of one area (one class per transition, "
                        "'forest -> farmland'; unchanged pixels keep their class or share 'no change'), with the "
                        "transition matrix of mapped areas. The maps must share a class table; the second is read on "
                        "the first one's grid. A minimum mapping unit merges small change patches into their "
                        "neighbours.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ch.add_argument("map_a", help="class map of the first date (e.g. from `stars segment`)")
    ch.add_argument("map_b", help="class map of the second date, same classes")
    ch.add_argument("output", help="from-to GeoTIFF to write (with its colour table, class names and .qml)")
    ch.add_argument("--unchanged", choices=["keep", "single"], default="keep",
                    help="unchanged pixels keep their class (default) or share one 'no change' class")
    ch.add_argument("--groups", metavar="CSV", help="group transitions into change classes: columns from,to,group "
                    "(class names or values, * for any; first match wins; the rest: 'other change')")
    _mmu_arguments(ch, "the change map")
    ch.add_argument("--polygons", metavar="GPKG", help="also write the changed patches as polygons (from_class, "
                    "to_class, area)")
    ch.add_argument("--csv", metavar="PATH", help="write the transition matrix (mapped ha) as CSV")
    ch.add_argument("--html", metavar="PATH", help="write an HTML report with the transition matrix")
    ch.add_argument("--class-table", help="CSV/JSON class table of both maps (default: the one stored in them)")


def cmd_change(args) -> int:
    from ..change import change_map

    result = change_map(args.map_a, args.map_b, args.output, unchanged=args.unchanged, groups=args.groups,
                        mmu=_mmu(args), connectivity=args.connectivity, class_table=args.class_table,
                        polygons=args.polygons, matrix_csv=args.csv, html_report=args.html, cancel=STOP, log=print)
    share = 100 * result.changed_ha / max(result.total_ha, 1e-12)
    print(f"wrote {result.path}: {result.changed_ha:,.2f} ha changed of {result.total_ha:,.2f} ha ({share:.2f} %)")
    for row in sorted(result.rows(), key=lambda r: -r["area_ha"]):
        if row["from"] != row["to"]:
            print(f"  {row['from'] + ' -> ' + row['to']:<36} {row['area_ha']:>12,.2f} ha")
    for path in (result.polygons, args.csv, args.html):
        if path:
            print(f"wrote {path}")
    return 0


HANDLERS = {"change": cmd_change}
