"""Real data: leave-one-tile-out on the five TerraMesh tiles in ../shared/data/terramind.

For each tile: train STARS (S1 + S2 + LULC) and Baseline-SAR (S1 + LULC) with the same budget on the
four other tiles (each in its own UTM zone), segment the left-out tile from Sentinel-1 alone and
compare with its LULC map (class 0 'no data' ignored). Prints per-class IoU and mIoU per fold and
pooled over folds (one confusion matrix summed over the five left-out tiles).

Five 224-pixel tiles rank nothing: one tile is all snow/ice (a class no other tile shows), the LULC
map is itself a model's output, and a fold's mIoU moves by several points with the seed. These
numbers show that the pipeline runs on real radar and how a SAR-only map compares with the land-cover
map, not which method is better. `--class-weights` weights L_seg by the training labels' class
frequencies; `--pretrained-m1/-m2` start the encoders from named weights (`stars weights list`;
downloaded once into the cache, so not on a machine without internet). Usage:
    python bench/real.py [--data ../shared/data/terramind] [--steps 150] [--class-weights sqrt-inverse]
                         [--pretrained-m1 ssl4eo-s1-resnet50 --pretrained-m2 ssl4eo-s2-resnet50
                          --backbone resnet50] [--json out.json]
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from pathlib import Path

from stars_core import threads  # first: the toolbox's thread policy, set before torch loads

threads.prepare_environment()
import numpy as np
import torch

from stars_core.config import DataConfig, LossConfig, SegmentConfig, StarsConfig, TrainConfig
from stars_core.training.data import SceneSpec
from stars_core.evaluate import evaluate
from stars_core.segmentation.infer import segment
from stars_core.metrics import metrics_from_confusion
from stars_core.training.train import train

threads.configure("auto")

ROOT = Path(__file__).resolve().parents[1]
LULC = [  # value, name, colour (ESRI 10 m land cover legend)
    (1, "water", "#419bdf"), (2, "trees", "#397d49"), (3, "flooded vegetation", "#7a87c6"),
    (4, "crops", "#e49635"), (5, "built area", "#c4281b"), (6, "bare ground", "#a59b8f"),
    (7, "snow/ice", "#a8ebff"), (8, "clouds", "#616161"), (9, "rangeland", "#e3e2c3"),
]
MODELS = {"STARS": "stars", "Baseline-SAR": "single"}


def fold(tile: str, tiles: list[str], data: Path, mode: str, args, work: Path, classes: Path) -> dict:
    specs = [SceneSpec(str(data / "S1RTC" / f"{t}.tif"), str(data / "S2L2A" / f"{t}.tif"),
                       str(data / "LULC" / f"{t}.tif")) for t in tiles if t != tile]
    model = work / f"{tile}_{mode}.stars"
    cfg = TrainConfig.for_steps(args.steps, batch_size=args.batch, lr=args.lr, checkpoint_every=10**9,
                                seed=args.seed, device=args.device, num_workers=0)
    data_cfg = DataConfig(chip_size=args.chip, val_fraction=0, min_valid=0.3, class_table=str(classes),
                          ignore_values=(0,))
    t0 = time.perf_counter()
    train(specs, model, StarsConfig(backbone=args.backbone, encoder_width=args.width, mode=mode),
          LossConfig(class_weights=args.class_weights), train_cfg=cfg, data_cfg=data_cfg, modalities=("S1", "S2"),
          pretrained_m1=args.pretrained_m1, pretrained_m2=args.pretrained_m2 if mode == "stars" else None,
          log=lambda *_: None)
    seconds = time.perf_counter() - t0
    pred = work / f"{tile}_{mode}.tif"
    segment(model, data / "S1RTC" / f"{tile}.tif", pred, SegmentConfig(tile_size=224 + 32 - 224 % 32,
                                                                      device=args.device))
    report = evaluate(pred, data / "LULC" / f"{tile}.tif", classes, ignore_values=[0])
    return {"tile": tile, "model": mode, "seconds": round(seconds, 1), "miou": report["miou"],
            "confusion": report["confusion"], "names": report["class_names"],
            "iou": {n: v["iou"] for n, v in report["per_class"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "terramind")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--chip", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--class-weights", default="none", choices=["none", "inverse", "sqrt-inverse"])
    ap.add_argument("--pretrained-m1", help="a registry name (stars weights list) or a weight file, for the SAR encoders")
    ap.add_argument("--pretrained-m2", help="the same for the optical encoder (STARS only)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not (args.data / "S1RTC").is_dir():
        raise SystemExit(f"no TerraMesh tiles at {args.data} (expected S1RTC/, S2L2A/, LULC/); pass --data")
    tiles = sorted(p.stem for p in (args.data / "S1RTC").glob("*.tif"))
    print(f"# leave-one-tile-out on {len(tiles)} TerraMesh tiles: {args.backbone} width {args.width}, {args.steps} "
          f"steps of batch {args.batch} on {args.chip}-px chips, lr {args.lr}, seed {args.seed}, class weights "
          f"{args.class_weights}, pretrained {args.pretrained_m1 or '-'} / {args.pretrained_m2 or '-'}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        classes = work / "lulc.csv"
        with open(classes, "w", newline="") as f:
            csv.writer(f).writerows([("value", "name", "color"), *LULC])
        for tile in tiles:
            for label, mode in MODELS.items():
                row = fold(tile, tiles, args.data, mode, args, work, classes)
                rows.append(row)
                print(f"  left out {tile}, {label}: mIoU {row['miou']:.3f} (trained in {row['seconds']:.0f} s)",
                      flush=True)
    names = rows[0]["names"]
    print("\n| left-out tile | model | mIoU | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for r in rows:
        label = next(k for k, v in MODELS.items() if v == r["model"])
        print(f"| {r['tile']} | {label} | {r['miou']:.3f} | "
              + " | ".join("-" if r["iou"][n] is None else f"{r['iou'][n]:.2f}" for n in names) + " |")
    for label, mode in MODELS.items():
        pooled = metrics_from_confusion(sum(np.array(r["confusion"]) for r in rows if r["model"] == mode), names)
        print(f"| all five, pooled | {label} | {pooled['miou']:.3f} | "
              + " | ".join("-" if v["iou"] is None else f"{v['iou']:.2f}" for v in pooled["per_class"].values())
              + " |")
    print("\nFive tiles rank nothing: see the note at the top of bench/real.py.")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
