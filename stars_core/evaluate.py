"""Accuracy of a classified raster against a reference label raster: confusion matrix, per-class
IoU / F1 / precision / recall, mIoU, mF1 and overall accuracy (metrics.py, the same code as
training validation), written as JSON, Markdown, HTML and a PNG of the confusion matrix."""
from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from .classes import IGNORE, ClassTable
from .classmap import stored_classes
from .files import atomic_path, check_outputs
from .metrics import confusion_matrix, metrics_from_confusion
from .plots import class_matrix_png
from .raster import aligned, open_raster
from .errors import Cancelled, InputError

STRIP = 512  # rows read at a time


def evaluate(
    prediction: str | os.PathLike,
    labels: str | os.PathLike,
    class_table: str | os.PathLike | ClassTable | None = None,
    ignore_values: Iterable[int] = (),
    cancel: Callable[[], bool] | None = None,
) -> dict:
    """Metrics of `prediction` against `labels` (read on the prediction's grid, nearest neighbour).
    Classes come from `class_table`, else from the prediction's own metadata. Labelled pixels the
    prediction left as no-data are counted apart (`labelled_without_prediction`), not as errors."""
    ignore_values = [int(v) for v in ignore_values]
    with open_raster(prediction, "prediction") as pred, open_raster(labels, "label") as lab_src:
        if isinstance(class_table, ClassTable):
            classes = class_table
        elif class_table is not None:
            classes = ClassTable.from_file(class_table)
        else:
            classes = stored_classes(pred)
            if classes is None:
                raise InputError(f"{os.fspath(prediction)!r} holds no STARS class table; give the class table "
                                 f"(CSV value,name,color) the labels use")
        lab = aligned(pred, lab_src, Resampling.nearest, os.fspath(prediction), os.fspath(labels))
        K = len(classes)
        cm = np.zeros((K, K), np.int64)
        missing = 0
        try:
            for row in range(0, pred.height, STRIP):
                if cancel is not None and cancel():
                    raise Cancelled("evaluation cancelled")
                window = Window(0, row, pred.width, min(STRIP, pred.height - row))
                p = pred.read(1, window=window, masked=True)
                y = lab.read(1, window=window, masked=True)
                target = classes.lookup(y.data, ignore_values, os.fspath(labels), mask=np.ma.getmaskarray(y))
                guess = classes.lookup(p.data, (), os.fspath(prediction), mask=np.ma.getmaskarray(p))
                no_pred = (guess == IGNORE) & (target != IGNORE)
                missing += int(no_pred.sum())
                target[no_pred] = IGNORE
                cm += confusion_matrix(guess, target, K)
        finally:
            if lab is not lab_src:
                lab.close()
    report = metrics_from_confusion(cm, classes.names)
    report.update(
        prediction=os.fspath(prediction), labels=os.fspath(labels), class_values=list(classes.values),
        class_colors=list(classes.colors), labelled_without_prediction=missing,
    )
    return report


# -- reports ------------------------------------------------------------------------------------
def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.4f}"


def markdown_report(report: dict) -> str:
    lines = [
        f"# Accuracy of {Path(report['prediction']).name}",
        "",
        f"Reference: `{report['labels']}`; {report['pixels']:,} labelled pixels compared"
        + (f", {report['labelled_without_prediction']:,} labelled pixels without prediction (no data)"
           if report.get("labelled_without_prediction") else "") + ".",
        "",
        f"| mIoU | mF1 | overall accuracy |",
        f"|---:|---:|---:|",
        f"| {_fmt(report['miou'])} | {_fmt(report['mf1'])} | {_fmt(report['oa'])} |",
        "",
        "| value | class | IoU | F1 | precision | recall | reference pixels |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for v, (name, m) in zip(report["class_values"], report["per_class"].items()):
        lines.append(f"| {v} | {name} | {_fmt(m['iou'])} | {_fmt(m['f1'])} | {_fmt(m['precision'])} | "
                     f"{_fmt(m['recall'])} | {m['pixels']:,} |")
    names = report["class_names"]
    lines += ["", "Confusion matrix (rows: reference, columns: prediction, pixels):", "",
              "| reference \\ prediction | " + " | ".join(names) + " |",
              "|---|" + "---:|" * len(names)]
    for name, row in zip(names, report["confusion"]):
        lines.append(f"| {name} | " + " | ".join(f"{c:,}" for c in row) + " |")
    return "\n".join(lines) + "\n"


def html_report(report: dict, png: str | None = None) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{v}</td><td><span style='background:{c}'>&nbsp;&nbsp;&nbsp;</span> {e(n)}</td>"
        f"<td>{_fmt(m['iou'])}</td><td>{_fmt(m['f1'])}</td><td>{_fmt(m['precision'])}</td>"
        f"<td>{_fmt(m['recall'])}</td><td>{m['pixels']:,}</td></tr>"
        for v, c, (n, m) in zip(report["class_values"], report["class_colors"], report["per_class"].items())
    )
    names = report["class_names"]
    cm = "".join(f"<tr><th>{e(n)}</th>" + "".join(f"<td>{c:,}</td>" for c in row) + "</tr>"
                 for n, row in zip(names, report["confusion"]))
    img = f"<p><img src='{e(png)}' alt='confusion matrix'></p>" if png else ""
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>STARS accuracy</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;text-align:right}} table{{border-collapse:collapse}}
tr:nth-child(even){{background:#f2f2f2}}</style></head><body>
<h2>Accuracy of {e(Path(report['prediction']).name)}</h2>
<p>Reference: {e(report['labels'])}; {report['pixels']:,} labelled pixels compared;
{report.get('labelled_without_prediction', 0):,} labelled pixels without prediction.</p>
<p><b>mIoU {_fmt(report['miou'])}</b> &nbsp; mF1 {_fmt(report['mf1'])} &nbsp; overall accuracy {_fmt(report['oa'])}</p>
<table><tr><th>value</th><th>class</th><th>IoU</th><th>F1</th><th>precision</th><th>recall</th><th>reference pixels</th></tr>
{rows}</table>
<h3>Confusion matrix</h3><p>rows: reference, columns: prediction (pixels)</p>
<table><tr><th></th>{''.join(f'<th>{e(n)}</th>' for n in names)}</tr>{cm}</table>{img}
</body></html>
"""


def plot_confusion(report: dict, path: str | os.PathLike) -> Path:
    """PNG of the row-normalised confusion matrix (recall per reference class), non-empty cells annotated."""
    cm = np.asarray(report["confusion"], np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    return class_matrix_png(norm, report["class_names"], path, title=f"mIoU {_fmt(report['miou'])}  OA "
                            f"{_fmt(report['oa'])}", xlabel="prediction", ylabel="reference", cmap="Blues",
                            limits=(0, 1), colorbar="share of reference pixels", annotate=cm > 0, white_above=0.5)


def check_report_paths(prediction, labels, class_table=None, json_path=None, markdown=None, html_path=None,
                       png=None) -> None:
    """Before any work: no report may overwrite the map, the labels or the class table."""
    check_outputs({"classified raster": prediction, "reference labels": labels, "class table": class_table},
                  {"JSON report": json_path, "Markdown report": markdown, "HTML report": html_path,
                   "confusion PNG": png})


def write_reports(report: dict, json_path=None, markdown=None, html_path=None, png=None) -> None:
    """Write the requested report files (each atomically)."""
    if png is not None:
        plot_confusion(report, png)
    for path, text in ((json_path, lambda: json.dumps(report, indent=2)), (markdown, lambda: markdown_report(report)),
                       (html_path, lambda: html_report(report, os.path.basename(png) if png else None))):
        if path is not None:
            with atomic_path(path) as tmp:
                Path(tmp).write_text(text())
