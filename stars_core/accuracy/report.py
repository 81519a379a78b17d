"""Reports of an assessment: a plain-text table for the terminal, JSON, CSV and HTML."""
from __future__ import annotations

import csv
import html
import io
import json
import os
from pathlib import Path

from ..files import atomic_path
from .assess import Assessment


def _pm(value, se, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    ci = None if se is None else 1.96 * se
    return f"{value:.{digits}f}" + (f" ± {ci:.{digits}f}" if ci is not None else " (no interval)")


def _wilson(r: dict) -> str | None:
    lo, hi = r["users_wilson95_low"], r["users_wilson95_high"]
    return None if lo is None else f"{lo:.3f}-{hi:.3f}"


def rows(a: Assessment) -> list[dict]:
    """One row per class: mapped and estimated area (ha, % of the mapped area) with the 95 % interval,
    user's and producer's accuracy with theirs, and the sample points."""
    e = a.estimate
    out = []
    for k, name in enumerate(e.names):
        se = e.area_se[k]
        out.append({
            "value": a.values[k], "class": name, "points": int(e.counts[k].sum()),
            "mapped_ha": float(e.mapped_area[k]), "mapped_percent": 100 * float(e.weights[k]),
            "area_ha": float(e.area[k]), "area_ci95_ha": None if se is None else 1.96 * se,
            "area_percent": 100 * float(e.area_share[k]),
            "area_ci95_percent": None if e.area_share_se[k] is None else 196 * e.area_share_se[k],
            "users_accuracy": e.users[k], "users_ci95": e.ci95(e.users_se[k]),
            "users_wilson95_low": None if not e.users_wilson or e.users_wilson[k] is None else e.users_wilson[k][0],
            "users_wilson95_high": None if not e.users_wilson or e.users_wilson[k] is None else e.users_wilson[k][1],
            "producers_accuracy": e.producers[k], "producers_ci95": e.ci95(e.producers_se[k]),
        })
    return out


def as_dict(a: Assessment) -> dict:
    e = a.estimate
    return {
        "map": a.map_path, "sample": a.sample_path, "labelled_points": a.labelled,
        "unlabelled_points": a.unlabelled, "classes": e.names, "values": a.values,
        "overall_accuracy": e.overall, "overall_ci95": e.ci95(e.overall_se),
        "mapped_area_ha": e.total_area, "per_class": rows(a),
        "sample_counts": e.counts.tolist(), "area_proportions": e.proportions.tolist(),
        "method": "stratified estimators of Olofsson et al. (2014), strata = map classes; 95 % = 1.96 SE",
        "notes": e.notes,
    }


def text(a: Assessment) -> str:
    """The table printed by `stars assess`."""
    e = a.estimate
    lines = [f"overall accuracy {_pm(e.overall, e.overall_se)} ({a.labelled} labelled points; 95 % intervals)", "",
             f"{'class':<18} {'points':>6} {'mapped ha':>11} {'estimated ha (95 %)':>24} {'% of area':>10} "
             f"{'user':>14} {'producer':>14}"]
    for r in rows(a):
        area = f"{r['area_ha']:,.1f}" + (f" ± {r['area_ci95_ha']:,.1f}" if r["area_ci95_ha"] is not None else "")
        lines.append(f"{r['class']:<18} {r['points']:>6} {r['mapped_ha']:>11,.1f} {area:>24} "
                     f"{r['area_percent']:>9.1f}% "
                     f"{_pm(r['users_accuracy'], None if r['users_ci95'] is None else r['users_ci95'] / 1.96, 2):>14} "
                     f"{_pm(r['producers_accuracy'], None if r['producers_ci95'] is None else r['producers_ci95'] / 1.96, 2):>14}")
    lines += [f"note: {n}" for n in e.notes]
    return "\n".join(lines) + "\n"


def to_csv(a: Assessment) -> str:
    buf = io.StringIO()
    table = rows(a)
    w = csv.DictWriter(buf, fieldnames=list(table[0]))
    w.writeheader()
    w.writerows(table)
    return buf.getvalue()


def to_html(a: Assessment) -> str:
    e = a.estimate

    def cell(v, digits=3):
        return "n/a" if v is None else (f"{v:,.{digits}f}" if isinstance(v, float) else html.escape(str(v)))

    head = ["class", "points", "mapped ha", "estimated ha", "± 95 % ha", "% of area", "user's", "± 95 %",
            "user's, Wilson 95 %", "producer's", "± 95 %"]
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in (r["class"], r["points"], r["mapped_ha"], r["area_ha"],
                                                         r["area_ci95_ha"], r["area_percent"], r["users_accuracy"],
                                                         r["users_ci95"], _wilson(r), r["producers_accuracy"],
                                                         r["producers_ci95"]))
        + "</tr>" for r in rows(a))
    matrix = "".join("<tr><th>" + html.escape(n) + "</th>" + "".join(f"<td>{v:.4f}</td>" for v in e.proportions[i])
                     + "</tr>" for i, n in enumerate(e.names))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in e.notes)
    return (f"<!doctype html><meta charset='utf-8'><title>Accuracy and area: {html.escape(Path(a.map_path).name)}</title>"
            f"<h1>Accuracy and area of {html.escape(Path(a.map_path).name)}</h1>"
            f"<p>Overall accuracy {cell(e.overall)} ± {cell(e.ci95(e.overall_se))} (95 %), from {a.labelled} labelled "
            f"points of the stratified sample {html.escape(Path(a.sample_path).name)}; estimators of Olofsson et al. "
            f"(2014), strata = map classes.</p>"
            f"<table border='1' cellspacing='0' cellpadding='3'><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{body}</table>"
            f"<h2>Error matrix in estimated area proportions</h2><p>rows: map class, columns: reference class</p>"
            f"<table border='1' cellspacing='0' cellpadding='3'><tr><th></th>"
            f"{''.join(f'<th>{html.escape(n)}</th>' for n in e.names)}</tr>{matrix}</table>"
            + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""))


def write_reports(a: Assessment, json_path=None, csv_path=None, html_path=None) -> None:
    for path, make in ((json_path, lambda: json.dumps(as_dict(a), indent=2)), (csv_path, lambda: to_csv(a)),
                       (html_path, lambda: to_html(a))):
        if path is not None:
            with atomic_path(os.fspath(path)) as tmp:
                Path(tmp).write_text(make())
