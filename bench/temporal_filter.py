"""Spurious and real change in SAR-only series maps, with and without the temporal filter (issue 34).

Per seed: the demo scene (`--size`, that seed) and two generated series of `--dates` dates over it,
one with the events of `stars demo-scene --dates` (a forest clearing, new buildings, a one-date
flood, and the crop cycle) and one without any class change (crop cycle and speckle only). A model
is trained on date 1 (SAR + optical + labels, `--steps`), every date of both series is segmented
from SAR alone with probabilities, and the maps are taken raw and through the filter (`--switch`).
Measured against the true labels of every date:
    spurious change   on the series without change: the share of pixels whose mapped class differs
                      between two consecutive dates (every such difference is false), and the share
                      whose class at the last date differs from the first;
    changes found     on the series with events: of the pixels the clearing or the buildings changed
                      (lasting), the share mapped as changed between the first and the last date;
                      of the pixels the flood covered on its one date, the share mapped as water then.
Prints mean and standard deviation over the seeds; never asserts. Usage:
    python bench/temporal_filter.py [--seeds 0 1 2] [--size 512] [--dates 12] [--steps 200] [--switch 0.02]
"""
from __future__ import annotations

import argparse
import csv
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stars_core import threads  # noqa: E402  (the thread policy before torch loads)

threads.prepare_environment()
from stars_core.change.demo_series import make_demo_series  # noqa: E402
from stars_core.change.series import filter_folder, read_dates, segment_series  # noqa: E402
from stars_core.config import DataConfig, SegmentConfig, StarsConfig, TrainConfig  # noqa: E402
from stars_core.training.data import SceneSpec  # noqa: E402
from stars_core.demo_scene import make_demo_scene  # noqa: E402
from stars_core.training.train import train  # noqa: E402

threads.configure("auto")
WATER = 3


def read(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def maps_of(folder: Path, dates: list[str], suffix: str) -> list[np.ndarray]:
    return [read(folder / f"{d}{suffix}.tif") for d in dates]


def measure(seed: int, args, tmp: Path) -> dict:
    scene = make_demo_scene(tmp / "scene", size=args.size, seed=seed, sheets=(1, 1))
    model = train([SceneSpec(str(scene["sar"]), str(scene["optical"]), str(scene["labels"]))], tmp / "m.stars",
                  StarsConfig(backbone="resnet18", encoder_width=32),
                  train_cfg=TrainConfig.for_steps(args.steps, batch_size=8, lr=1e-3, seed=seed, num_workers=0,
                                                  device="cpu"),
                  data_cfg=DataConfig(chip_size=128, class_table=str(scene["classes"]), ignore_values=(0,)),
                  log=lambda *_: None).path
    out = {}
    for name, events in (("still", False), ("events", True)):
        series = make_demo_series(tmp / name, args.dates, size=args.size, seed=seed, events=events)
        dates = read_dates(table=series["dates"])
        folder = tmp / name / "maps"
        segment_series(model, dates, folder, SegmentConfig(tile_size=128, device="cpu", runtime=args.runtime),
                       probabilities=True, log=lambda *_: None)
        filter_folder(folder, args.switch)
        names = [d.date for d in dates]
        truth = [read(series["folder"] / f"labels_{d}.tif") for d in names]
        valid = np.all([t > 0 for t in truth], axis=0) & np.all([m != 255 for m in maps_of(folder, names, "")], axis=0)
        for suffix, label in (("", "raw"), ("_filtered", "filtered")):
            maps = maps_of(folder, names, suffix)
            if not events:
                steps = [((a != b) & valid).sum() / valid.sum() for a, b in zip(maps, maps[1:])]
                out[f"spurious per date pair, {label}"] = float(np.mean(steps))
                out[f"spurious first-last, {label}"] = float(((maps[0] != maps[-1]) & valid).sum() / valid.sum())
            else:
                lasting = valid & (truth[0] != truth[-1])
                out[f"lasting change found, {label}"] = float(((maps[0] != maps[-1]) & lasting).sum()
                                                              / max(lasting.sum(), 1))
                rows = list(csv.DictReader(series["events"].open()))
                flood = next((r for r in rows if r["event"].startswith("flood")), None)
                if flood is not None:
                    k = names.index(flood["first date"])
                    flooded = valid & (truth[k] == WATER) & (truth[0] != WATER)
                    out[f"one-date flood found, {label}"] = float(((maps[k] == WATER) & flooded).sum()
                                                                  / max(flooded.sum(), 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--switch", type=float, default=0.02)
    ap.add_argument("--runtime", default="torch", choices=["torch", "int8", "auto"])
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {threads.available_cores()} cores; "
          f"{args.size} px, {args.dates} dates, {args.steps} steps, switch {args.switch}, runtime {args.runtime}")
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            r = measure(seed, args, Path(tmp))
        print(f"seed {seed}: " + "; ".join(f"{k} {v:.4f}" for k, v in r.items()), flush=True)
        rows.append(r)
    print(f"\n| measure (mean ± sd over {len(rows)} seeds) | raw | filtered |\n|---|---:|---:|")
    for key in dict.fromkeys(k.rsplit(", ", 1)[0] for k in rows[0]):
        cells = []
        for label in ("raw", "filtered"):
            v = [r[f"{key}, {label}"] for r in rows]
            cells.append(f"{statistics.mean(v):.4f} ± {statistics.pstdev(v):.4f}")
        print(f"| {key} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
