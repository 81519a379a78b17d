"""A SAR series on the default runtime: minutes and peak memory of `stars segment-series` over N dates
of SIZE x SIZE, against one `stars segment` of one date with the same model, engine and tiles.

The question (issue 34): does each date of a series cost what one `stars segment` costs (one model load
and one export for the whole series), and does memory stay flat (goal: under 3 GB)? Each command runs
in its own process under /usr/bin/time (wall seconds, peak resident memory). The dates are the
generated demo series (`stars demo-scene --dates N`, 1024 x 1024 each) repeated by a VRT to SIZE; the
model is a STARS model of the chosen backbone trained a few steps on the demo scene (speed does not
depend on its weights). The int8 export is made once beforehand (its minute is a user's first run, the
same for a series and a single map) and both runs reuse it. Prints, never asserts. Usage:
    python bench/series_speed.py [--dates 12] [--size 4096] [--backbone resnet50] [--tile-size 512]
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def timed(argv: list[str], label: str) -> dict:
    """Run `stars ARGV` in its own process: wall seconds and peak resident memory (GB)."""
    report = Path(tempfile.mktemp(suffix=".time"))
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), sys.executable, "-m", "stars_core.cli",
                           *argv], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{label} failed:\n{done.stderr[-2000:]}")
    peak_kb = int(report.read_text().strip().splitlines()[-1])
    report.unlink()
    return {"label": label, "seconds": wall, "peak_gb": peak_kb / 2**20, "stdout": done.stdout}


def train_model(scene: dict, out: Path, backbone: str, steps: int) -> Path:
    from stars_core.config import DataConfig, StarsConfig, TrainConfig
    from stars_core.training.data import SceneSpec
    from stars_core.training.train import train

    spec = [SceneSpec(str(scene["sar"]), str(scene["optical"]), str(scene["labels"]))]
    return train(spec, out, StarsConfig(backbone=backbone),
                 train_cfg=TrainConfig.for_steps(steps, batch_size=2, lr=1e-3, num_workers=0, device="cpu"),
                 data_cfg=DataConfig(chip_size=128, class_table=str(scene["classes"]), ignore_values=(0,)),
                 log=lambda *_: None).path


def series_inputs(tmp: Path, dates: int, size: int) -> Path:
    """The demo series, each date repeated to size x size by a VRT; returns a date,path table."""
    from segment_memory import repeat_vrt

    from stars_core.change.demo_series import make_demo_series

    series = make_demo_series(tmp, dates, size=1024, seed=0)
    rows = list(csv.DictReader(open(series["dates"])))
    table = tmp / f"dates_{size}.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "path"])
        for r in rows:
            src = (series["dates"].parent / r["path"]).resolve()
            w.writerow([r["date"], repeat_vrt(src, size, tmp / f"S1_{r['date']}_{size}.vrt")])
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--tile-size", type=int, default=512)
    ap.add_argument("--filter", action="store_true", help="also time the series with --temporal-filter")
    args = ap.parse_args()
    from stars_core.demo_scene import make_demo_scene

    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp_name:
        tmp = Path(tmp_name)
        scene = make_demo_scene(tmp / "scene", size=512, seed=0)
        model = train_model(scene, tmp / "model.stars", args.backbone, args.steps)
        table = series_inputs(tmp, args.dates, args.size)
        first = next(csv.DictReader(open(table)))["path"]
        tile = ["--tile-size", str(args.tile_size)]
        runs = [timed(["segment", str(model), first, str(tmp / "export.tif"), *tile], "first segment (makes the export)")]
        runs.append(timed(["segment", str(model), first, str(tmp / "one.tif"), *tile], "one date: stars segment"))
        runs.append(timed(["segment-series", str(model), str(tmp / "series"), "--dates", str(table), *tile],
                          f"{args.dates} dates: stars segment-series"))
        if args.filter:
            runs.append(timed(["segment-series", str(model), str(tmp / "filtered"), "--dates", str(table), *tile,
                               "--temporal-filter"], f"{args.dates} dates: segment-series --temporal-filter"))
        runtime_line = next((line for r in runs for line in r["stdout"].splitlines() if line.startswith("runtime")), "")
    cpu = sorted({f for f in open("/proc/cpuinfo").read().split() if f in ("avx2", "avx512_vnni", "amx_tile")})
    print(f"\n{platform.node()}, {os.cpu_count()} cores ({', '.join(cpu)}); {args.backbone} STARS, {args.size} x "
          f"{args.size} per date, {args.tile_size}-pixel tiles, default runtime; {runtime_line[:110]}")
    one = runs[1]["seconds"]
    print(f"| run | minutes | per date (min) | per date / one segment | peak memory (GB) |\n|---|---:|---:|---:|---:|")
    for r in runs:
        n = args.dates if "dates:" in r["label"] else 1
        print(f"| {r['label']} | {r['seconds'] / 60:.2f} | {r['seconds'] / 60 / n:.2f} | "
              f"{r['seconds'] / n / one:.2f} | {r['peak_gb']:.2f} |")


if __name__ == "__main__":
    main()
