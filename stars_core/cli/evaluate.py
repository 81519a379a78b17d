"""`stars evaluate` (a map against reference labels) and `stars evaluate-chips` (a model on a chip folder)."""
from __future__ import annotations

import json

from .common import chip_folder, chip_folder_arguments, report_arguments
from .stop import STOP


def _evaluate_chips_parser(sub) -> None:
    ec = sub.add_parser("evaluate-chips", help="score a model on a chip folder: SAR alone, optical alone, both",
                        description="Accuracy of a model on a folder of paired chips (see `stars train --chips`), "
                        "from modality 1 alone, modality 2 alone and both; the reports are those of `stars evaluate` "
                        "for the modality-1 map, and the JSON holds all three.")
    ec.add_argument("model", help="model file written by `stars train`")
    ec.add_argument("root", help="chip folder root")
    chip_folder_arguments(ec, root_flag=False)
    ec.add_argument("--ignore-value", type=int, action="append", default=[],
                    help="label value to leave out (EarthMiss: 0); repeatable")
    ec.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    report_arguments(ec, " (modality 1 alone; the JSON holds every branch)")


def cmd_evaluate_chips(args) -> int:
    from ..training.chips import evaluate_chips
    from ..evaluate import check_report_paths, markdown_report, write_reports
    from ..files import atomic_path

    args.chips = args.root
    check_report_paths(args.model, args.root, None, args.json, args.markdown, args.html, args.png)
    reports = evaluate_chips(args.model, chip_folder(args), args.ignore_value, device=args.device, cancel=STOP)
    write_reports(reports["m1"], None, args.markdown, args.html, args.png)
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(reports, indent=2))
    print(markdown_report(reports["m1"]), end="")
    print("\n| input | mIoU | mF1 | overall accuracy |\n|---|---:|---:|---:|")
    for r in reports.values():
        print(f"| {r['prediction']} | {r['miou']:.4f} | {r['mf1']:.4f} | {r['oa']:.4f} |")
    return 0


def cmd_evaluate(args) -> int:
    from ..evaluate import check_report_paths, evaluate, markdown_report, write_reports

    check_report_paths(args.prediction, args.labels, args.class_table, args.json, args.markdown, args.html, args.png)
    report = evaluate(args.prediction, args.labels, args.class_table, args.ignore_value, cancel=STOP)
    write_reports(report, args.json, args.markdown, args.html, args.png)
    print(markdown_report(report), end="")
    return 0


def _evaluate_parser(sub) -> None:
    ev = sub.add_parser("evaluate", help="accuracy of a classified raster against reference labels")
    ev.add_argument("prediction", help="classified raster (e.g. from `stars segment`)")
    ev.add_argument("labels", help="reference label raster (read on the prediction grid)")
    ev.add_argument("--class-table", help="CSV/JSON class table (default: the one stored in the prediction)")
    ev.add_argument("--ignore-value", type=int, action="append", default=[],
                    help="label value to leave out (e.g. 0 'no data'); repeatable")
    report_arguments(ev, "")


def add_parsers(sub) -> None:
    _evaluate_parser(sub)
    _evaluate_chips_parser(sub)


HANDLERS = {"evaluate": cmd_evaluate, "evaluate-chips": cmd_evaluate_chips}
