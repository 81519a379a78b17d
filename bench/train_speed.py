"""Training throughput on the demo scene: steps/s and the share of step time spent waiting for data.

Prints, never asserts (goal: data wait under 10%). Usage:
    python bench/train_speed.py [--backbone resnet18] [--width 64] [--chip 256] [--batch 4]
                                [--steps 20] [--workers 1] [--device auto]
"""
from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

from stars_core import threads  # first: the toolbox's thread policy, set before torch loads

threads.prepare_environment()
import torch

from stars_core.config import DataConfig, StarsConfig, TrainConfig
from stars_core.training.data import SceneSpec
from stars_core.demo_scene import make_demo_scene
from stars_core.training.train import train

threads.configure("auto")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--chip", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", type=int, default=1024, help="demo scene size")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        p = make_demo_scene(Path(tmp) / "scene", size=args.size, seed=0)
        spec = [SceneSpec(str(p["sar"]), str(p["optical"]), str(p["labels"]))]
        print(f"# training speed, {args.backbone} width {args.width}, chip {args.chip}, batch {args.batch}, "
              f"{args.steps} steps, torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{platform.machine()}")
        print("\n| workers | device | steps/s | chips/s | data wait fraction |\n|---|---|---|---|---|")
        for workers in args.workers:
            cfg = TrainConfig.for_steps(args.steps, batch_size=args.batch, checkpoint_every=10**9,
                                        num_workers=workers, device=args.device)
            data = DataConfig(chip_size=args.chip, val_fraction=0, class_table=str(p["classes"]))
            r = train(spec, Path(tmp) / "m.stars", StarsConfig(backbone=args.backbone, encoder_width=args.width),
                      train_cfg=cfg, data_cfg=data, log=lambda *_: None)
            s = r.summary
            rate = s["steps"] / s["seconds"]
            print(f"| {workers} | {s['device']} | {rate:.3f} | {rate * args.batch:.2f} | {s['data_wait_fraction']:.3f} |")


if __name__ == "__main__":
    main()
