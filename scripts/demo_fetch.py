"""`make demo-fetch`: from an area to estimated change areas, offline, through the `stars fetch` commands.

The local catalogue of the tests (tests/servers/: stac-fastapi-pgstac on a throw-away PostgreSQL +
PostGIS cluster, rangehttpserver for the COGs) is started on 127.0.0.1 with a generated scene and its
dated SAR series (known changes, true labels of every date). Then, each a `stars` command as a user
would type it, with --stac-url naming the local API instead of Planetary Computer's:
AOI -> fetch pair (the first date's Sentinel-1, the cloud-masked Sentinel-2, WorldCover labels) ->
train (tiny, a few steps) -> fetch series (ascending orbit only) -> segment-series -> change between
the first and last dates -> sample -> the points labelled from the true labels (recoded to WorldCover,
standing in for an interpreter) -> assess. Prints the estimated change areas with their 95 %
intervals beside the mapped and the true ones, and writes demo_fetch_out/summary.json. Usage:
    python scripts/demo_fetch.py [--out demo_fetch_out] [--size 256] [--dates 6] [--steps 150]
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from demo_change import label_from_truth, print_areas, true_changes  # noqa: E402  (stand-in, truth, table)


def stars(*args: str) -> str:
    """Run one `stars` command; its output, or a one-line failure."""
    print("$ stars " + " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "stars_core.cli", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"demo-fetch: `stars {' '.join(args[:2])}` failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def area_of(servers, margin: float = 0.05) -> str:
    """The AOI a user would draw: a lon/lat box just inside the scene."""
    wc = next(i for i in servers.catalogue["items"] if i["collection"] == "esa-worldcover")
    x0, y0, x1, y1 = wc["bbox"]
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return f"{x0 + dx:.6f},{y0 + dy:.6f},{x1 - dx:.6f},{y1 - dy:.6f}"


def truth_on_grid(labels: Path, grid: Path, out: Path) -> Path:
    """A date's true labels, recoded to WorldCover's codes, on the fetched grid (nearest)."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    from tests.servers.catalogue import TO_WORLDCOVER

    with rasterio.open(labels) as src, rasterio.open(grid) as ref:
        codes = np.zeros_like(src.read(1))
        for value, code in TO_WORLDCOVER.items():
            codes[src.read(1) == value] = code
        profile = {**ref.profile, "count": 1, "dtype": "uint8", "nodata": 0}
        on_grid = np.zeros((ref.height, ref.width), np.uint8)
        reproject(codes, on_grid, src_transform=src.transform, src_crs=src.crs, dst_transform=ref.transform,
                  dst_crs=ref.crs, resampling=Resampling.nearest, src_nodata=0, dst_nodata=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(on_grid, 1)
    return out


def run_chain(servers, out: Path, steps: int) -> tuple[Path, Path, list[str]]:
    """The commands from the area to the change map; returns the pair, the series folder and its dates."""
    aoi, api, dates = area_of(servers), servers.stac.url, sorted(
        p.stem[3:] for p in servers.catalogue["scene"]["series"].glob("S1_*.tif"))
    pair, s1 = out / "pair", out / "s1"
    cache = ("--cache", str(out / "servers" / "fetch-cache"))  # the local servers' URLs change with each run
    window = ("--aoi", aoi, "--start", dates[0], "--end", "2024-04-10", "--out", str(pair), "--stac-url", api, *cache)
    print(stars("fetch", "pair", *window, "--dry-run"))  # the first date's radar, the April optical scenes
    print(stars("fetch", "pair", *window).strip().splitlines()[-1])
    model = out / "model.stars"
    if not model.is_file():
        stars("train", "--m1", str(pair / "sar.tif"), "--m2", str(pair / "optical.tif"), "--labels",
              str(pair / "labels.tif"), "--class-table", str(pair / "classes.csv"), "--ignore-value", "0",
              "--out", str(model), "--backbone", "resnet18", "--encoder-width", "16", "--chip-size", "64",
              "--batch-size", "8", "--steps", str(steps), "--lr", "2e-3", "--workers", "0")
    print(stars("fetch", "series", "--aoi", aoi, "--start", dates[0], "--end", dates[-1], "--orbit", "ascending",
                "--out", str(s1), "--stac-url", api, *cache).strip().splitlines()[-1])
    stars("segment-series", str(model), str(out / "maps"), "--dates", str(s1 / "dates.csv"), "--temporal-filter")
    print(stars("change", str(out / "change.tif"), "--series", str(out / "maps"), "--unchanged", "single",
                "--csv", str(out / "matrix.csv"), "--html", str(out / "change.html")))
    with open(s1 / "dates.csv") as f:
        fetched = [row["date"] for row in csv.DictReader(f)]
    return pair, s1, fetched


def main() -> int:
    from tests.servers import ServerUnavailable, start_servers

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="demo_fetch_out")
    ap.add_argument("--size", type=int, default=256, help="scene side in pixels (10 m)")
    ap.add_argument("--dates", type=int, default=6, help="dates of the series (every other one ascending)")
    ap.add_argument("--steps", type=int, default=150, help="training steps")
    args = ap.parse_args()
    out, start = Path(args.out).resolve(), time.time()
    shutil.rmtree(out / "servers", ignore_errors=True)  # a fresh catalogue and database each run
    try:
        servers = start_servers(out / "servers", size=args.size, dates=args.dates)
    except ServerUnavailable as exc:
        raise SystemExit(f"demo-fetch: the local catalogue could not start: {exc}")
    try:
        print(f"local STAC API {servers.stac.url}, assets {servers.assets.url}")
        pair, s1, dates = run_chain(servers, out, args.steps)
        series = servers.catalogue["scene"]["series"]
        first, last = (truth_on_grid(series / f"labels_{d}.tif", out / "change.tif", out / "truth" / f"{d}.tif")
                       for d in (dates[0], dates[-1]))
    finally:
        servers.stop()
    stars("sample", str(out / "change.tif"), str(out / "sample.gpkg"), "--n", "300", "--min-per-class", "20",
          "--replace-labelled")
    labelled = label_from_truth(out / "sample.gpkg", first, last)
    stars("assess", str(out / "change.tif"), str(out / "sample.gpkg"), "--json", str(out / "report.json"),
          "--html", str(out / "report.html"))
    with open(pair / "classes.csv") as f:
        names = {int(row["value"]): row["name"] for row in csv.DictReader(f)}
    truth = true_changes(first, last, names)
    rows = print_areas(json.loads((out / "report.json").read_text()), truth, width=36)
    summary = {"seconds": round(time.time() - start), "dates": dates, "labelled_points": labelled, "changes": rows,
               "true_changes_ha": truth}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"demo-fetch: {summary['seconds']} s; {out / 'report.html'}, {out / 'change.html'}, {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
