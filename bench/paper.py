"""The paper's Table 1 row on a chip folder: STARS and Baseline-SAR trained with the paper's recipe
and scored from SAR alone on the test chips.

Defaults are the paper's (section 4.1.1): ResNet-50, 80,000 steps of batch 8 on 512-pixel crops
(flips and rotations), Adam lr 1e-4 with 1000 warm-up steps, alpha 0.5, beta 0.2: a GPU job (about
2 h per model on one H100 if bench/gpu_check.sh meets its goal). The layout is EarthMiss's
(SAR/<name>_SAR.tif, RGB/<name>.tif, mask/<name>_mask.tif, mask 0 = ignore); other layouts take the
same options as `stars train --chips`. Prints the row and writes the models and reports into --out.
Usage:
    python bench/paper.py TRAIN_ROOT --test TEST_ROOT [--out paper_run] [--steps 80000] [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from stars_core import threads  # first: the toolbox's thread policy, set before torch loads

threads.prepare_environment()
import torch  # noqa: E402

from stars_core.training.chips import ChipFolder, evaluate_chips  # noqa: E402
from stars_core.config import DataConfig, LossConfig, StarsConfig, TrainConfig  # noqa: E402
from stars_core.models import pretrained_plan  # noqa: E402
from stars_core.training.train import train  # noqa: E402

threads.configure("auto")
METHODS = {"Baseline-SAR": "single", "STARS": "stars"}


def folder(root: str, args) -> ChipFolder:
    return ChipFolder(root, args.m1_dir, args.m2_dir, args.labels_dir, args.m1_suffix, args.m2_suffix,
                      args.labels_suffix)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train_root")
    ap.add_argument("--test", help="test chip folder (default: the training folder, which only checks the run)")
    ap.add_argument("--out", type=Path, default=Path("paper_run"))
    ap.add_argument("--steps", type=int, default=TrainConfig().steps)
    ap.add_argument("--batch", type=int, default=TrainConfig().batch_size)
    ap.add_argument("--chip", type=int, default=DataConfig().chip_size)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--lr", type=float, default=TrainConfig().lr)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ignore-value", type=int, action="append", default=None, help="default: 0 (EarthMiss)")
    ap.add_argument("--class-table", help="CSV (value,name,color); default: the mask values")
    ap.add_argument("--pretrained-m1")
    ap.add_argument("--pretrained-m2")
    d = ChipFolder("")
    for key in ("m1_dir", "m2_dir", "labels_dir", "m1_suffix", "m2_suffix", "labels_suffix"):
        ap.add_argument(f"--{key.replace('_', '-')}", default=getattr(d, key))
    args = ap.parse_args()
    ignore = tuple(args.ignore_value) if args.ignore_value is not None else (0,)
    args.out.mkdir(parents=True, exist_ok=True)
    test_root = args.test or args.train_root
    print(f"# paper recipe: {args.backbone} width {args.width}, {args.steps} steps of batch {args.batch} on "
          f"{args.chip}-px crops, lr {args.lr}, train {args.train_root}, test {test_root}"
          f"{'' if args.test else ' (the training chips: checks the run, ranks nothing)'}, torch {torch.__version__}, "
          f"{threads.describe()}, {platform.machine()}", flush=True)
    given = {k: v for k, v in (("m1", args.pretrained_m1), ("m2", args.pretrained_m2)) if v}
    for method, mode in METHODS.items():  # every method gets the same files; say where each part starts
        plan = pretrained_plan(mode, given)
        print(f"# {method} starts from: " + ", ".join(
            f"{part} {os.path.basename(given[k]) if k else 'scratch'}" for part, k in plan.items()), flush=True)
    rows = {}
    for method, mode in METHODS.items():
        model = args.out / f"{mode}.stars"
        t0 = time.perf_counter()
        train(folder(args.train_root, args).scenes(), model,
              StarsConfig(backbone=args.backbone, encoder_width=args.width, mode=mode), LossConfig(),
              TrainConfig.for_steps(args.steps, batch_size=args.batch, lr=args.lr, seed=args.seed, device=args.device,
                                    num_workers=args.workers),
              DataConfig(chip_size=args.chip, val_fraction=0.05, class_table=args.class_table, ignore_values=ignore),
              pretrained_m1=args.pretrained_m1, pretrained_m2=args.pretrained_m2,
              log=lambda m: print(f"  {method}: {m}", flush=True))
        hours = (time.perf_counter() - t0) / 3600
        reports = evaluate_chips(model, folder(test_root, args), ignore, device=args.device, log=lambda *_: None)
        (args.out / f"{mode}_test.json").write_text(json.dumps(reports, indent=2))
        rows[method] = dict(reports["m1"], hours=hours)
    base = rows["Baseline-SAR"]["miou"]
    print("\n| Method | SAR-only mIoU | mF1 | OA | vs Baseline-SAR | training hours |\n|---|---:|---:|---:|---:|---:|")
    for method, r in rows.items():
        print(f"| {method} | {100 * r['miou']:.2f} | {100 * r['mf1']:.2f} | {100 * r['oa']:.2f} | "
              f"{100 * (r['miou'] - base):+.2f} | {r['hours']:.2f} |")
    print("\npaper, EarthMiss SAR-only test: Baseline-SAR 23.45, STARS 33.04 (+9.60)")


if __name__ == "__main__":
    main()
