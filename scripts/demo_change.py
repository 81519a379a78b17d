"""`make demo-change`: change through clouds, end to end on the command line, on a generated series.

Steps, each a `stars` command as a user would type it: demo-scene with a series of --dates dates
(known changes, true labels of every date) -> train on date 1 with SAR + optical (the only date with
an optical image) -> segment-series from SAR alone with the temporal filter -> change between the
first and last dates (minimum mapping unit) -> sample the change map (its transitions as strata, a
minimum per stratum) -> the points labelled from the true labels of both dates (standing in for an
interpreter) -> assess. Prints the estimated change areas with their 95 % intervals beside the mapped
and the true ones, and writes demo_change_out/summary.json. Usage:
    python scripts/demo_change.py [--out demo_change_out] [--size 1024] [--dates 8] [--steps 300]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def stars(*args: str) -> str:
    """Run one `stars` command; its output, or a one-line failure."""
    cmd = [sys.executable, "-m", "stars_core.cli", *args]
    print("$ stars " + " ".join(args), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"demo-change: `stars {args[0]}` failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def label_from_truth(sample: Path, first: Path, last: Path) -> int:
    """The interpreter stand-in: each point's true class at the first and the last date."""
    import rasterio
    from osgeo import ogr

    ds = ogr.Open(str(sample), 1)
    layer = ds.GetLayerByName("sample")
    n = 0
    with rasterio.open(first) as a, rasterio.open(last) as b:
        ta, tb = a.read(1), b.read(1)
        for f in layer:
            g = f.GetGeometryRef()
            row, col = a.index(g.GetX(), g.GetY())
            if ta[row, col] and tb[row, col]:
                f.SetField("reference_from", int(ta[row, col]))
                f.SetField("reference_to", int(tb[row, col]))
                layer.SetFeature(f)
                n += 1
    layer = ds = None
    return n


def true_changes(first: Path, last: Path, names: dict) -> dict[str, float]:
    import rasterio

    from stars_core.raster import pixel_area

    with rasterio.open(first) as a, rasterio.open(last) as b:
        ta, tb, ha = a.read(1), b.read(1), pixel_area(a) / 10_000
    out = {}
    for i in np.unique(ta[ta > 0]):
        for j in np.unique(tb[tb > 0]):
            if i != j and ((ta == i) & (tb == j)).any():
                out[f"{names[int(i)]} -> {names[int(j)]}"] = float(((ta == i) & (tb == j)).sum() * ha)
    return out


def print_areas(report: dict, truth: dict[str, float], width: int) -> list[dict]:
    """The report's transitions (those mapped, estimated or true) against their true areas, as a table
    whose first column is `width` wide; returns its rows."""
    rows = []
    print(f"{'change':<{width}} {'mapped ha':>10} {'estimated ha (95 %)':>22} {'true ha':>9}")
    for c in report["per_class"]:
        if " -> " not in c["class"] or not (c["mapped_ha"] or c["area_ha"] or truth.get(c["class"])):
            continue  # unchanged pixels, and transitions nobody saw
        ci = c["area_ci95_ha"]
        est = f"{c['area_ha']:,.2f}" + (f" ± {ci:,.2f}" if ci is not None else "")
        true = truth.get(c["class"], 0.0)
        print(f"{c['class']:<{width}} {c['mapped_ha']:>10,.2f} {est:>22} {true:>9,.2f}")
        rows.append({"change": c["class"], "mapped_ha": c["mapped_ha"], "estimated_ha": c["area_ha"],
                     "ci95_ha": ci, "true_ha": true})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="demo_change_out")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--dates", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    out = Path(args.out)
    start = time.time()
    stars("demo-scene", "--out", str(out / "scene"), "--size", str(args.size), "--dates", str(args.dates))
    scene, series = out / "scene", out / "scene" / "series"
    model = out / "model.stars"
    if not model.is_file():
        stars("train", "--m1", str(scene / "sar.tif"), "--m2", str(scene / "optical.tif"), "--labels",
              str(scene / "labels.tif"), "--class-table", str(scene / "classes.csv"), "--ignore-value", "0",
              "--out", str(model), "--backbone", "resnet18", "--encoder-width", "32", "--chip-size", "128",
              "--batch-size", "8", "--steps", str(args.steps), "--lr", "1e-3", "--workers", "0")
    stars("segment-series", str(model), str(out / "maps"), "--dates", str(series / "dates.csv"), "--temporal-filter")
    print(stars("change", str(out / "change.tif"), "--series", str(out / "maps"), "--mmu", "20px",
                "--csv", str(out / "matrix.csv"), "--html", str(out / "change.html"), "--unchanged", "single"))
    stars("sample", str(out / "change.tif"), str(out / "sample.gpkg"), "--n", "300", "--min-per-class", "25",
          "--replace-labelled")
    dates = sorted(p.stem.split("_", 1)[1] for p in series.glob("labels_*.tif"))
    first, last = series / f"labels_{dates[0]}.tif", series / f"labels_{dates[-1]}.tif"
    labelled = label_from_truth(out / "sample.gpkg", first, last)
    report = stars("assess", str(out / "change.tif"), str(out / "sample.gpkg"), "--json", str(out / "report.json"),
                   "--html", str(out / "report.html"))
    print(report)
    r = json.loads((out / "report.json").read_text())
    names = {int(line.split(",")[0]): line.split(",")[1] for line in
             (scene / "classes.csv").read_text().splitlines()[1:]}
    truth = true_changes(first, last, names)
    rows = print_areas(r, truth, width=28)
    summary = {"seconds": round(time.time() - start), "labelled_points": labelled, "changes": rows,
               "true_changes_ha": truth}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"demo-change: {summary['seconds']} s; {out / 'report.html'}, {out / 'change.html'}, {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
