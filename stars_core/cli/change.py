"""The change chain's commands: `stars segment-series` (a map per date of a SAR series), `stars
filter-series` (the temporal filter over a series' probabilities) and `stars change` (the from-to map of
two class maps or two periods of a series, its transition matrix and change polygons)."""
from __future__ import annotations

import argparse
import os
import sys

from .common import engine_arguments, mmu_arguments, mmu_value, segment_config
from .stop import STOP

EPILOG = """examples:
  stars change landcover_2023.tif landcover_2024.tif change.tif --csv matrix.csv --html change.html
  stars change a.tif b.tif change.tif --unchanged single --mmu 0.5ha --polygons change.gpkg
  stars change a.tif b.tif change.tif --groups groups.csv      # rows: from,to,group (names or values; * any)
then sample the change map and estimate change areas with intervals:
  stars sample change.tif sample.gpkg --min-per-class 30 ... (label from and to), stars assess ..."""


def _series_parser(sub) -> None:
    se = sub.add_parser("segment-series", help="a land-cover map for every date of a SAR series, on one grid",
                        description="Segment every date of a series with one model load: each raster warped onto "
                        "the grid of the first (or --grid) on the fly, pixels a date does not cover left as no data; "
                        "dates from --dates (a CSV of date,path), the file names (ISO dates) or GDAL metadata. A "
                        "rerun keeps a date's map only when the same model file, raster, grid and options made it "
                        "(series.csv records them) and says why it maps a date again. Under `torchrun --nproc_per_node N "
                        "[--nnodes M ...]` the dates are split across the processes (the same files as one process; "
                        "a failed date is named and the others are kept) and the first runs the temporal filter once "
                        "all have finished. Then `stars change` between two dates.")
    se.add_argument("model", help="model file (.stars or exported .onnx)")
    se.add_argument("out_dir", help="output folder: <date>.tif per date and series.csv")
    se.add_argument("rasters", nargs="*", help="SAR rasters, one per date (the date in the name, e.g. "
                    "S1_2024-05-01.tif, or in TIFFTAG_DATETIME)")
    se.add_argument("--dates", metavar="CSV", help="a table of date,path (paths relative to it) instead of or "
                    "besides the rasters")
    se.add_argument("--grid", metavar="RASTER", help="raster whose grid every map is on (default: the first date's)")
    se.add_argument("--probabilities", action="store_true", help="also write <date>_probabilities.tif: one band "
                    "per class, uint8 (value = 255 x probability)")
    se.add_argument("--temporal-filter", action="store_true", help="then the temporal filter (a hidden Markov "
                    "model over each pixel's dates, Viterbi): <date>_filtered.tif, with less flicker (implies "
                    "--probabilities; see docs/change.md)")
    se.add_argument("--switch", type=float, default=0.02, help="the filter's prior probability that a pixel's class "
                    "changes from one date to the next (default 0.02; smaller: less flicker, and fewer brief real "
                    "changes kept)")
    se.add_argument("--no-skip-existing", action="store_true", help="segment dates already done again")
    engine_arguments(se)
    se.add_argument("--modality", type=int, choices=[1, 2], default=1,
                    help="which modality the rasters are: 1 = SAR/DSM (default), 2 = optical")


def cmd_segment_series(args) -> int:
    from ..change.series import check_filter, filter_folder, read_dates, segment_series
    from ..progress import progress_bar, say

    dates = read_dates(args.rasters, args.dates)
    if args.temporal_filter:  # refused now, not after every date is mapped
        check_filter(args.out_dir, dates, args.switch)
    share, barrier, device = _processes(args.device)
    cfg = segment_config(args, device=device)
    log = say if share.rank == 0 else (lambda m: say(f"[process {share.rank}] {m}"))
    bar, current = None, [-1]

    def progress(k: int, n: int, done: int, total: int) -> None:
        nonlocal bar
        if current[0] != k:
            if bar is not None:
                bar.close()
            bar = progress_bar(total, "tile", what=f"date {k + 1}/{n} {dates[k].date}: ", leave=False)
            current[0] = k
        bar.update(done - bar.n)

    try:
        result = segment_series(args.model, dates, args.out_dir, cfg, grid=args.grid,
                                skip_existing=not args.no_skip_existing,
                                probabilities=args.probabilities or args.temporal_filter,
                                cancel=STOP, progress=progress if share.rank == 0 else None, log=log,
                                info=lambda m: log(m) if share.rank else say(m, file=sys.stderr),
                                share=share, barrier=barrier)
    finally:
        if bar is not None:
            bar.close()
    if share.rank != 0:  # rank 0 reports every process's dates and runs the filter
        return 0
    print(f"{len(result.done)} date(s) segmented, {len(result.skipped)} already done"
          + (f", {len(result.failed)} failed" if result.failed else "") + f"; record {result.record}")
    if result.failed:
        print(f"stars segment-series: error: {len(result.failed)} date(s) failed, the others' maps are kept (a rerun "
              f"maps only what is missing): " + "; ".join(f"{d}: {why}" for d, why in sorted(result.failed.items())),
              file=sys.stderr)
        return 1
    if args.temporal_filter:
        _report_filter(filter_folder(args.out_dir, args.switch, cancel=STOP), args.switch)
    return 0


def _processes(device: str) -> tuple:
    """(this process's `Share`, a barrier or None, its device): under torchrun, a gloo group for the
    barrier (the dates need no communication) and, on CUDA, the process's local GPU."""
    from ..segmentation.sheets import Share
    from .common import cuda_available

    share = Share.from_env()
    if share.world == 1:
        return share, None, device
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    if device in ("auto", "cuda") and cuda_available():
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return share, dist.barrier, device


def _report_filter(counts: dict, switch: float) -> None:
    share = 100 * counts["changed"] / max(counts["pixels"], 1)
    print(f"temporal filter (switch {switch:g}): {counts['changed']:,} of {counts['pixels']:,} date-pixels changed "
          f"class ({share:.2f} %); wrote {len(counts['outputs'])} *_filtered.tif")


def _filter_parser(sub) -> None:
    fs = sub.add_parser("filter-series", help="the temporal filter over a series folder (segment-series output)",
                        description="Each pixel's most probable class sequence under a hidden Markov model (stays in "
                        "its class from one date to the next with probability 1 - SWITCH), decoded with Viterbi "
                        "from the per-date probabilities: <date>_filtered.tif beside each map. Needs a series made "
                        "with --probabilities.")
    fs.add_argument("out_dir", help="the folder of `stars segment-series`")
    fs.add_argument("--switch", type=float, default=0.02, help="prior probability of a class change between two "
                    "dates (default 0.02)")


def cmd_filter_series(args) -> int:
    from ..change.series import filter_folder

    _report_filter(filter_folder(args.out_dir, args.switch, cancel=STOP), args.switch)
    return 0


def add_parsers(sub) -> None:
    _series_parser(sub)
    _filter_parser(sub)
    ch = sub.add_parser("change", help="land-cover change between two maps: from-to map, matrix, polygons",
                        description="The from-to map of two class maps of one area (one class per transition, "
                        "'forest -> farmland'; unchanged pixels keep their class or share 'no change'), with the "
                        "transition matrix of mapped areas. The maps must share a class table; the second is read on "
                        "the first one's grid. A minimum mapping unit merges small change patches into their "
                        "neighbours.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ch.add_argument("maps", nargs="+", metavar="MAP_A MAP_B OUTPUT", help="the class maps of the two dates (same "
                    "classes) and the from-to GeoTIFF to write; with --series only OUTPUT")
    ch.add_argument("--series", metavar="DIR", help="take the maps from a `stars segment-series` folder: the first "
                    "and last dates, or --from and --to (the filtered maps where it has them)")
    ch.add_argument("--from", dest="period_a", metavar="DATE|FROM:TO", help="with --series: the first date or period "
                    "(a period's map is each pixel's most frequent class over its dates)")
    ch.add_argument("--to", dest="period_b", metavar="DATE|FROM:TO", help="with --series: the second date or period")
    ch.add_argument("--unchanged", choices=["keep", "single"], default="keep",
                    help="unchanged pixels keep their class (default) or share one 'no change' class")
    ch.add_argument("--groups", metavar="CSV", help="group transitions into change classes: columns from,to,group "
                    "(class names or values, * for any; first match wins; the rest: 'other change')")
    mmu_arguments(ch, "the change map")
    ch.add_argument("--polygons", metavar="GPKG", help="also write the changed patches as polygons (from_class, "
                    "to_class, area)")
    ch.add_argument("--csv", metavar="PATH", help="write the transition matrix (mapped ha) as CSV")
    ch.add_argument("--html", metavar="PATH", help="write an HTML report with the transition matrix")
    ch.add_argument("--class-table", help="CSV/JSON class table of both maps (default: the one stored in them)")


def _change_inputs(args) -> tuple[str, str, str, list[str]]:
    """MAP_A, MAP_B and OUTPUT from the positionals, or from --series and its periods. A period of
    several dates is its own map, kept beside the change map (OUTPUT_from.tif, OUTPUT_to.tif) so that
    `stars assess` finds both dates' maps."""
    from pathlib import Path

    from ..errors import InputError

    if args.series is None:
        if len(args.maps) != 3 or args.period_a or args.period_b:
            raise InputError("give MAP_A MAP_B OUTPUT, or --series DIR [--from ...] [--to ...] OUTPUT")
        return (*args.maps, [])
    if len(args.maps) != 1:
        raise InputError("with --series give only OUTPUT: the maps come from the series folder")
    from ..change.series import period_map
    from ..files import check_outputs

    output = Path(args.maps[0])
    kept = {"map of the --from period": output.with_name(output.stem + "_from.tif"),
            "map of the --to period": output.with_name(output.stem + "_to.tif")}
    check_outputs({}, {"change map": output, **kept, **{f"style of the {k}": p.with_suffix(".qml")
                                                          for k, p in kept.items()}})
    a, label_a = period_map(args.series, args.period_a, "first", kept["map of the --from period"], cancel=STOP)
    b, label_b = period_map(args.series, args.period_b, "last", kept["map of the --to period"], cancel=STOP)
    print(f"from {label_a} to {label_b}")
    made = [str(p) for p in (a, b) if p in kept.values()]
    for path in made:
        print(f"wrote {path} (the period's map, which the change map refers to)")
    return str(a), str(b), args.maps[0], made


def _protect_series(args) -> None:
    """With --series the series' record and the files it names may be read (a period's maps,
    series.csv): no output may be one of them, checked before a period's map is made. Other files of
    the folder (an earlier change map written there) are not the series' and may be written again."""
    from ..change.series import recorded_files
    from ..files import check_outputs

    series = {(what if what.startswith("series") else f"series' {what}"): path
              for what, path in recorded_files(args.series).items()}
    check_outputs(series,
                  {"change map": args.maps[-1] if args.maps else None, "change polygons": args.polygons,
                   "transition matrix CSV": args.csv, "HTML report": args.html})


def cmd_change(args) -> int:
    if args.series is not None:
        _protect_series(args)
    a, b, output, periods = _change_inputs(args)
    try:
        return _run_change(args, a, b, output)
    except BaseException:  # cancelled or failed: the period maps made for it go too
        for p in periods:
            for f in (p, p + ".aux.xml", os.path.splitext(p)[0] + ".qml"):
                if os.path.exists(f):
                    os.remove(f)
        raise


def _run_change(args, map_a: str, map_b: str, output: str) -> int:
    from ..change import change_map

    result = change_map(map_a, map_b, output, unchanged=args.unchanged, groups=args.groups,
                        mmu=mmu_value(args), connectivity=args.connectivity, class_table=args.class_table,
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


HANDLERS = {"change": cmd_change, "segment-series": cmd_segment_series, "filter-series": cmd_filter_series}
