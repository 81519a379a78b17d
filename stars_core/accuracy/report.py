"""Reports of an assessment: a plain-text table for the terminal, JSON, CSV and HTML."""
from __future__ import annotations

import csv
import html
import io
import json
import os
import textwrap
from pathlib import Path

from ..files import atomic_path
from .assess import Assessment


BOOT_MEANING = ("± 95 %: the published normal interval (1.96 standard errors). Bootstrap 95 %: the points resampled "
                "within their strata, with one more point of the class where a point weighs most at its upper end: "
                "how much of the class the sample cannot rule out, however few points of it were found outside its "
                "own strata. Where a class is marked *, the normal interval is not to be trusted (a class hiding in "
                "large strata is unseen by it); read the bootstrap one.")


def _pm(value, se, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    ci = None if se is None else 1.96 * se
    return f"{value:.{digits}f}" + (f" ± {ci:.{digits}f}" if ci is not None else " (no interval)")


UNCONFIRMED = ("mapped, never confirmed by a sample point: its 0 ± 0 ha is not an interval (no point's reference "
               "is this class; its true area is unknown, not 0)")


def _ha(value: float) -> str:
    """Hectares as reports show them: 2 decimals (0.01 ha is one 10 m pixel), thousands separated."""
    return f"{value:,.2f}"


def _unconfirmed(mapped: float, area: float, se: float | None) -> str | None:
    """The note beside a class that is mapped but no sample point's reference confirms: 0 ha, with
    a zero-width interval or none (a stratum of one point)."""
    return UNCONFIRMED if mapped > 0 and area == 0 and not se else None


def _wilson(r: dict) -> str | None:
    lo, hi = r["users_wilson95_low"], r["users_wilson95_high"]
    return None if lo is None else f"{lo:.3f}-{hi:.3f}"


def _boot(e, k: int, total: float) -> dict:
    """The bootstrap 95 % interval of class k's area (ha) beside the normal one, and why the normal
    one is not to be trusted (None where nothing says so)."""
    b = getattr(e, "area_share_boot95", None)
    doubt = getattr(e, "normal_doubt", None) or []
    return {"area_boot95_low_ha": None if b is None else float(b[k, 0] * total),
            "area_boot95_high_ha": None if b is None else float(b[k, 1] * total),
            "normal_interval_doubt": doubt[k] if k < len(doubt) else None}


def _boot_text(r: dict) -> str:
    lo, hi = r["area_boot95_low_ha"], r["area_boot95_high_ha"]
    return "" if lo is None else f"{_ha(lo)}-{_ha(hi)}" + (" *" if r["normal_interval_doubt"] else "")


def rows(a: Assessment) -> list[dict]:
    """One row per class: mapped and estimated area (ha, % of the mapped area) with the 95 % interval
    (normal, and the bootstrap's beside it), user's and producer's accuracy with theirs, and the
    sample points."""
    e = a.estimate
    out = []
    for k, name in enumerate(e.names):
        se = e.area_se[k]
        out.append({
            "value": a.values[k], "class": name, "points": int(e.counts[k].sum()),
            "mapped_ha": float(e.mapped_area[k]), "mapped_percent": 100 * float(e.weights[k]),
            "area_ha": float(e.area[k]), "area_ci95_ha": None if se is None else 1.96 * se,
            **_boot(e, k, e.total_area),
            "area_percent": 100 * float(e.area_share[k]),
            "area_ci95_percent": None if e.area_share_se[k] is None else 196 * e.area_share_se[k],
            "users_accuracy": e.users[k], "users_ci95": e.ci95(e.users_se[k]),
            "users_wilson95_low": None if not e.users_wilson or e.users_wilson[k] is None else e.users_wilson[k][0],
            "users_wilson95_high": None if not e.users_wilson or e.users_wilson[k] is None else e.users_wilson[k][1],
            "producers_accuracy": e.producers[k], "producers_ci95": e.ci95(e.producers_se[k]),
            "area_note": _unconfirmed(float(e.mapped_area[k]), float(e.area[k]), se),
        })
    return out


def date_rows(a: Assessment) -> dict[str, list[dict]]:
    """A from-to map's sample: each date's class areas (ha, 95 %) and accuracies (Stehman 2014)."""
    out = {}
    total = a.estimate.total_area
    ci = (lambda se: None if se is None else 1.96 * se)
    for key, (path, e) in (a.dates or {}).items():
        mapped = (a.date_mapped or {}).get(key)
        out[key] = [{"class": n, "map": path, "mapped_ha": None if mapped is None else float(mapped[k]),
                     "area_ha": float(e.area_share[k] * total),
                     "area_ci95_ha": None if e.area_share_se[k] is None else 1.96 * e.area_share_se[k] * total,
                     **_boot(e, k, total),
                     "users_accuracy": e.users[k], "users_ci95": ci(e.users_se[k]),
                     "producers_accuracy": e.producers[k], "producers_ci95": ci(e.producers_se[k]),
                     "area_note": None if mapped is None else _unconfirmed(
                         float(mapped[k]), float(e.area_share[k]), e.area_share_se[k])}
                    for k, n in enumerate(e.names)]
    return out


def as_dict(a: Assessment) -> dict:
    e = a.estimate
    method = ("Stehman (2014): strata = the from-to map's classes; 95 % = 1.96 SE, and for areas a stratified "
              "bootstrap interval beside it (area_boot95_*)")
    dates = {k: {"overall_accuracy": est.overall, "overall_ci95": None if est.overall_se is None else 1.96 * est.overall_se,
                 "per_class": date_rows(a)[k], "method": method}
             for k, (_, est) in (a.dates or {}).items()}
    return {**({"dates": dates} if dates else {}),
        "map": a.map_path, "sample": a.sample_path, "labelled_points": a.labelled,
        "unlabelled_points": a.unlabelled, "classes": e.names, "values": a.values,
        "overall_accuracy": e.overall, "overall_ci95": e.ci95(e.overall_se),
        "mapped_area_ha": e.total_area, "per_class": rows(a),
        "sample_counts": e.counts.tolist(), "area_proportions": e.proportions.tolist(),
        "method": "stratified estimators of Olofsson et al. (2014), strata = map classes; 95 % = 1.96 SE, and for "
                  "areas a stratified bootstrap interval beside it (area_boot95_*: one more point of the class at "
                  "its upper end, where a point weighs most)",
        "notes": e.notes,
    }


def text(a: Assessment) -> str:
    """The table printed by `stars assess`."""
    e = a.estimate
    shown = [r for r in rows(a) if r["points"] or r["mapped_ha"] or r["area_ha"]]  # (every class in JSON and CSV)
    w = max([18] + [len(r["class"]) for r in shown])
    lines = [f"overall accuracy {_pm(e.overall, e.overall_se)} ({a.labelled} labelled points; 95 % intervals)", "",
             f"{'class':<{w}} {'points':>6} {'mapped ha':>11} {'estimated ha (95 %)':>24} {'bootstrap 95 %':>20} "
             f"{'% of area':>10} {'user':>14} {'producer':>14}"]
    for r in shown:
        area = _ha(r['area_ha']) + (f" ± {_ha(r['area_ci95_ha'])}" if r["area_ci95_ha"] is not None else "")
        lines.append(f"{r['class']:<{w}} {r['points']:>6} {_ha(r['mapped_ha']):>11} {area:>24} {_boot_text(r):>20} "
                     f"{r['area_percent']:>9.1f}% "
                     f"{_pm(r['users_accuracy'], None if r['users_ci95'] is None else r['users_ci95'] / 1.96, 2):>14} "
                     f"{_pm(r['producers_accuracy'], None if r['producers_ci95'] is None else r['producers_ci95'] / 1.96, 2):>14}"
                     + ("  <- mapped, never confirmed by a sample point" if r["area_note"] else ""))
    for key, rows_ in date_rows(a).items():
        lines += ["", *_date_text(key, rows_, a.dates[key][1])]
    date_rows_ = [r for rs in date_rows(a).values() for r in rs]
    if e.area_share_boot95 is not None:
        lines += ["", "bootstrap 95 %: points resampled within their strata, one more point of the class (or of "
                  "another) at each end: how much of the class the sample cannot rule out"]
    if any(r["normal_interval_doubt"] for r in [*rows(a), *date_rows_]):
        lines.append("* the normal interval (± 1.96 SE) is not to be trusted there: see the notes")
    marked = any(r["area_note"] for r in [*rows(a), *date_rows_])
    lines += [textwrap.fill(f"note: {n}", 110, subsequent_indent="      ", break_long_words=False,
                            break_on_hyphens=False) for n in ([f"<- {UNCONFIRMED}"] if marked else []) + e.notes]
    return "\n".join(lines) + "\n"


def _date_text(key: str, rows_: list[dict], est) -> list[str]:
    """A date's section of the text report: overall accuracy, then per class the mapped and estimated
    hectares and the user's and producer's accuracy, each with its 95 % interval."""
    w = max([18] + [len(r["class"]) for r in rows_])
    lines = [f"class areas at the {key} date (Stehman 2014; strata: the from-to map's classes)",
             f"  overall accuracy {_pm(est.overall, est.overall_se)} (95 % intervals)",
             f"  {'class':<{w}} {'mapped ha':>11} {'estimated ha (95 %)':>24} {'bootstrap 95 %':>20} {'user':>14} "
             f"{'producer':>14}"]
    for r in rows_:
        area = _ha(r["area_ha"]) + (f" ± {_ha(r['area_ci95_ha'])}" if r["area_ci95_ha"] is not None
                                    else " (no interval)")
        mapped = "n/a" if r["mapped_ha"] is None else _ha(r["mapped_ha"])
        lines.append(f"  {r['class']:<{w}} {mapped:>11} {area:>24} {_boot_text(r):>20} "
                     f"{_pm(r['users_accuracy'], None if r['users_ci95'] is None else r['users_ci95'] / 1.96, 2):>14} "
                     f"{_pm(r['producers_accuracy'], None if r['producers_ci95'] is None else r['producers_ci95'] / 1.96, 2):>14}"
                     + ("  <- mapped, never confirmed by a sample point" if r["area_note"] else ""))
    return lines


def to_csv(a: Assessment) -> str:
    buf = io.StringIO()
    table = rows(a)
    w = csv.DictWriter(buf, fieldnames=list(table[0]))
    w.writeheader()
    w.writerows(table)
    for key, rows_ in date_rows(a).items():  # a from-to map's sample: each date's classes, a table of their own
        buf.write("\n")
        w = csv.DictWriter(buf, fieldnames=["date", *rows_[0]])
        w.writeheader()
        w.writerows({"date": key, **r} for r in rows_)
    return buf.getvalue()


def to_html(a: Assessment) -> str:
    e = a.estimate

    def cell(v, digits=3):
        return "n/a" if v is None else (f"{v:,.{digits}f}" if isinstance(v, float) else html.escape(str(v)))

    head = ["class", "points", "mapped ha", "estimated ha", "± 95 % ha", "bootstrap 95 % ha", "% of area", "user's",
            "± 95 %", "user's, Wilson 95 %", "producer's", "± 95 %", "note"]
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(v, d)}</td>" for v, d in (
            (r["class"], 3), (r["points"], 3), (r["mapped_ha"], 2), (r["area_ha"], 2), (r["area_ci95_ha"], 2),
            (_boot_text(r) or None, 2), (r["area_percent"], 2), (r["users_accuracy"], 3), (r["users_ci95"], 3),
            (_wilson(r), 3), (r["producers_accuracy"], 3), (r["producers_ci95"], 3), (r["area_note"] or "", 3)))
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
            f"<p>{html.escape(BOOT_MEANING)}</p>"
            f"<h2>Mapped against estimated areas</h2><p>bars: mapped area; dots and lines: the estimate and its 95 % "
            f"interval. Where a dot falls outside its bar's end, the map's area is off by more than chance.</p>"
            f"{area_chart(rows(a))}" + _date_tables(a) +
            f"<h2>Error matrix in estimated area proportions</h2><p>rows: map class, columns: reference class</p>"
            f"<table border='1' cellspacing='0' cellpadding='3'><tr><th></th>"
            f"{''.join(f'<th>{html.escape(n)}</th>' for n in e.names)}</tr>{matrix}</table>"
            + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""))


def area_chart(table: list[dict], width: int = 640) -> str:
    """An SVG chart, one row per class: the mapped area as a bar, the estimate as a dot with its 95 %
    interval as a line (people look rather than read)."""
    rows_ = [r for r in table if r["mapped_ha"] > 0 or r["area_ha"] > 0]
    if not rows_:
        return ""
    top = max(max(r["mapped_ha"], r["area_ha"] + (r["area_ci95_ha"] or 0)) for r in rows_) or 1.0
    label, plot, step = 170, width - 190, 22
    scale = plot / top
    parts = []
    for i, r in enumerate(rows_):
        y = 10 + i * step
        lo = max(0.0, r["area_ha"] - (r["area_ci95_ha"] or 0))
        hi = r["area_ha"] + (r["area_ci95_ha"] or 0)
        parts.append(f"<text x='{label - 6}' y='{y + 12}' text-anchor='end' font-size='12'>{html.escape(r['class'])}</text>"
                     f"<rect x='{label}' y='{y + 3}' width='{r['mapped_ha'] * scale:.1f}' height='12' fill='#9ecae1'/>"
                     f"<line x1='{label + lo * scale:.1f}' x2='{label + hi * scale:.1f}' y1='{y + 9}' y2='{y + 9}' "
                     f"stroke='#08306b' stroke-width='2'/>"
                     f"<circle cx='{label + r['area_ha'] * scale:.1f}' cy='{y + 9}' r='4' fill='#08306b'/>")
    height = 20 + len(rows_) * step
    axis = f"<text x='{label}' y='{height}' font-size='11'>0</text><text x='{label + plot}' y='{height}' " \
           f"text-anchor='end' font-size='11'>{top:,.1f} ha</text>"
    return f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + 6}'>{''.join(parts)}{axis}</svg>"


def _date_tables(a: Assessment) -> str:
    def cell(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    out = ""
    for key, rows_ in date_rows(a).items():
        body = "".join(f"<tr><td>{html.escape(r['class'])}</td>" + "".join(
            f"<td>{cell(r[k], f)}</td>" for k, f in (
                ("mapped_ha", ",.2f"), ("area_ha", ",.2f"), ("area_ci95_ha", ",.2f"))) + "<td>"
            + (html.escape(_boot_text(r)) or "n/a") + "</td>" + "".join(
            f"<td>{cell(r[k], f)}</td>" for k, f in (
                ("users_accuracy", ".3f"), ("users_ci95", ".3f"), ("producers_accuracy", ".3f"), ("producers_ci95", ".3f")))
            + f"<td>{html.escape(r['area_note'] or '')}</td></tr>" for r in rows_)
        est = a.dates[key][1]
        overall = cell(est.overall, ".3f") + ("" if est.overall_se is None else f" ± {1.96 * est.overall_se:.3f}")
        out += (f"<h2>Class areas at the {key} date</h2><p>Overall accuracy {overall} (95 %). Stehman's (2014) "
                f"estimators: the sample's strata are the from-to map's classes, not this date's classes.</p>"
                f"<table border='1' cellspacing='0' cellpadding='3'><tr><th>class</th><th>mapped ha</th>"
                f"<th>estimated ha</th><th>± 95 % ha</th><th>bootstrap 95 % ha</th><th>user's</th><th>± 95 %</th>"
                f"<th>producer's</th><th>± 95 %</th><th>note</th></tr>{body}</table>")
    return out


def write_reports(a: Assessment, json_path=None, csv_path=None, html_path=None) -> None:
    for path, make in ((json_path, lambda: json.dumps(as_dict(a), indent=2)), (csv_path, lambda: to_csv(a)),
                       (html_path, lambda: to_html(a))):
        if path is not None:
            with atomic_path(os.fspath(path)) as tmp:
                Path(tmp).write_text(make())
