"""`stars sample` and `stars assess`: the command-line side of the accuracy package."""
from __future__ import annotations

import argparse
import sys

from ..errors import InputError

EPILOG_SAMPLE = """examples:
  stars sample landcover.tif sample.gpkg                          # n from eq. 13: SE(OA) 0.01, user's accuracies 0.8
  stars sample landcover.tif sample.gpkg --target-se 0.015 --expected-ua water=0.95,roads=0.6
  stars sample landcover.tif sample.gpkg --n 600 --allocation equal
  stars sample landcover.tif sample.gpkg --per-class forest=100,water=50,roads=80
then give each point its reference class (field `reference`, a class value; in QGIS a value map of
the class names), and: stars assess landcover.tif sample.gpkg --html report.html"""


def add_parsers(sub) -> None:
    sp = sub.add_parser("sample", help="draw a stratified random sample of points from a classified map",
                        description="A stratified random sample of pixel centres (strata: the map classes, no-data "
                        "left out) for design-based accuracy and area estimates (Olofsson et al. 2014). Writes a "
                        "GeoPackage with the points (empty `reference` field) and the strata table.",
                        epilog=EPILOG_SAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp.add_argument("map", help="classified raster (e.g. from `stars segment`)")
    sp.add_argument("out", help="sample GeoPackage to write (.gpkg)")
    sp.add_argument("--class-table", help="CSV/JSON class table (default: the one stored in the map)")
    sp.add_argument("--n", type=int, help="total points (default: from --target-se and --expected-ua, eq. 13)")
    sp.add_argument("--target-se", type=float, default=0.01,
                    help="target standard error of overall accuracy (default 0.01)")
    sp.add_argument("--expected-ua", default="0.8", metavar="U|name=U,...",
                    help="expected user's accuracy, one for all classes or per class (default 0.8)")
    sp.add_argument("--allocation", choices=["proportional", "equal"], default="proportional",
                    help="share of the points: proportional to the mapped area with --min-per-class (default), "
                    "or equal")
    sp.add_argument("--min-per-class", type=int, default=50, help="least points per class, proportional allocation "
                    "(default 50)")
    sp.add_argument("--per-class", metavar="name=N,...", help="points per class, instead of a total")
    sp.add_argument("--seed", type=int, default=0,
                    help="random seed of the draw: the same seed, the same points (default 0)")
    sp.add_argument("--replace-labelled", action="store_true", help="replace an existing sample at OUT even when "
                    "its points are labelled (the labels are lost; without it such a sample is never overwritten)")

    ap = sub.add_parser("assess", help="accuracy and class areas with 95 %% intervals from a labelled sample",
                        description="Design-based estimates (Olofsson et al. 2014) from the labelled points of "
                        "`stars sample`: the error matrix in estimated area proportions, overall, user's and "
                        "producer's accuracy, and the area of every class, each with its 95 % interval.")
    ap.add_argument("map", help="the classified raster the sample was drawn from")
    ap.add_argument("sample", help="the labelled sample GeoPackage")
    ap.add_argument("--class-table", help="CSV/JSON class table (default: the one stored in the map)")
    ap.add_argument("--json", metavar="PATH", help="write the estimates as JSON")
    ap.add_argument("--csv", metavar="PATH", help="write one row per class as CSV")
    ap.add_argument("--html", metavar="PATH", help="write an HTML report")


def cmd_sample(args, cancel=None) -> int:
    from ..accuracy.design import name_values
    from ..accuracy.sample import draw_sample

    try:
        users = float(args.expected_ua)
    except ValueError:
        users = name_values(args.expected_ua, float, "--expected-ua")
    per_class = name_values(args.per_class, int, "--per-class") if args.per_class else None
    result = draw_sample(args.map, args.out, class_table=args.class_table, n=args.n, target_se=args.target_se,
                         expected_users=users, allocation=args.allocation, minimum=args.min_per_class,
                         per_class=per_class, seed=args.seed, cancel=cancel,
                         log=lambda m: print(m, file=sys.stderr), replace_labelled=args.replace_labelled)
    print(f"wrote {result.path}: {result.total} points")
    width = max([20] + [len(n) for n in result.strata.names])
    for name, px, n in zip(result.strata.names, result.strata.pixels, result.points):
        print(f"  {name:<{width}} {n:>5} points of {px:,} pixels")
    return 0


def cmd_assess(args, cancel=None) -> int:
    from ..files import check_outputs
    from ..accuracy.assess import assess, assess_inputs
    from ..accuracy.report import text, write_reports

    check_outputs(assess_inputs(args.map, args.sample, args.class_table),
                  {"JSON report": args.json, "CSV report": args.csv, "HTML report": args.html})
    result = assess(args.map, args.sample, args.class_table, cancel=cancel)
    write_reports(result, args.json, args.csv, args.html)
    print(text(result), end="")
    return 0


HANDLERS = {"sample": cmd_sample, "assess": cmd_assess}  # each takes (args, cancel)
