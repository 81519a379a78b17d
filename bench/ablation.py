"""Method checks on the demo scene: a small version of the paper's Table 4 (which parts of STARS
matter) and Table 5 (beta, with and without the stop-gradient), all rows with the same budget.

Every row trains on demo scene seed 0 and is tested on demo scene seed 1 (same generator, unseen
ground) from SAR alone. Reported per row: SAR-only mIoU on the test scene, the fused mIoU (both
modalities) where the model has a fused branch, and, for STARS rows, the feature-collapse indicator
(spread of the unit-normalised shared features x sqrt(channels): ~1 spread, 0 collapsed) and the
diagonal gap of the cross-modal class similarity matrix, both on the validation chips at the end.
Prints, never asserts. One seed unless --seeds: differences of a few points are noise here. Usage:
    python bench/ablation.py [--steps 200] [--size 512] [--seeds 0] [--rows all|table4|table5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from stars_core.config import DataConfig, LossConfig, SegmentConfig, StarsConfig, TrainConfig
from stars_core.data import SceneSpec
from stars_core.demo_scene import make_demo_scene
from stars_core.evaluate import evaluate
from stars_core.infer import segment
from stars_core.train import train

STARS = dict(mode="stars")
TABLE4 = [  # (row name, model switches, loss switches)
    ("Baseline-SAR (single)", dict(mode="single"), {}),
    ("early fusion (concat)", dict(mode="concat"), {}),
    ("STARS w/o translation", dict(STARS, use_translation=False), {}),
    ("STARS w/o L_ncs", STARS, dict(use_ncs=False)),
    ("STARS w/o L_psc", STARS, dict(use_psc=False)),
    ("STARS w/o detach", STARS, dict(detach=False)),
    ("STARS", STARS, {}),
]
TABLE5 = [(f"STARS beta={beta}{'' if detach else ' w/o detach'}", STARS, dict(beta=beta, detach=detach))
          for detach in (True, False) for beta in (0.02, 0.2, 0.8)]


def run_row(name, model_sw, loss_sw, args, train_scene, test_scene, work: Path, seed: int) -> dict:
    model_cfg = StarsConfig(backbone=args.backbone, encoder_width=args.width, **model_sw)
    loss_cfg = LossConfig(**loss_sw)
    train_cfg = TrainConfig.for_steps(args.steps, batch_size=args.batch, lr=args.lr, val_every=args.steps,
                                      checkpoint_every=10**9, seed=seed, device=args.device, num_workers=0)
    data_cfg = DataConfig(chip_size=args.chip, val_fraction=0.1, class_table=str(train_scene["classes"]),
                          ignore_values=(0,))
    spec = [SceneSpec(str(train_scene["sar"]), str(train_scene["optical"]), str(train_scene["labels"]))]
    model = work / f"{abs(hash((name, seed)))}.stars"
    t0 = time.perf_counter()
    result = train(spec, model, model_cfg, loss_cfg, train_cfg, data_cfg, log=lambda *_: None)
    seconds = time.perf_counter() - t0
    seg_cfg = SegmentConfig(tile_size=256, device=args.device)
    row = {"row": name, "seed": seed, "train_seconds": round(seconds, 1)}
    segment(model, test_scene["sar"], work / "sar_only.tif", seg_cfg)
    row["miou_sar_only"] = evaluate(work / "sar_only.tif", test_scene["labels"], ignore_values=[0])["miou"]
    if model_sw.get("mode") != "single":
        segment(model, test_scene["sar"], work / "fused.tif", seg_cfg, with_m2=test_scene["optical"])
        row["miou_fused"] = evaluate(work / "fused.tif", test_scene["labels"], ignore_values=[0])["miou"]
    val = result.summary.get("validation", {})
    row["spread"], row["align_gap"] = val.get("val_spread"), val.get("val_align_gap")
    return row


def fmt(values: list, digits: int = 3) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(rows: list[dict], names: list[str]) -> str:
    lines = ["| row | SAR-only mIoU (test scene) | fused mIoU | collapse indicator (spread) | class alignment gap |",
             "|---|---|---|---|---|"]
    for name in names:
        rs = [r for r in rows if r["row"] == name]
        lines.append(f"| {name} | {fmt([r['miou_sar_only'] for r in rs])} | {fmt([r.get('miou_fused') for r in rs])} "
                     f"| {fmt([r['spread'] for r in rs], 2)} | {fmt([r['align_gap'] for r in rs], 2)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--size", type=int, default=512, help="demo scene pixels per side")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--rows", choices=["all", "table4", "table5"], default="all")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--chip", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, help="also write every row as JSON")
    args = ap.parse_args()
    plan = {"all": TABLE4 + [r for r in TABLE5 if r[0] not in ("STARS beta=0.2", "STARS beta=0.2 w/o detach")],
            "table4": TABLE4, "table5": TABLE5}[args.rows]
    print(f"# ablation: {args.backbone} width {args.width}, {args.steps} steps of batch {args.batch} on {args.chip}-px "
          f"chips, lr {args.lr}, demo scene {args.size} px (train seed 0, test seed 1), seeds {args.seeds}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_scene = make_demo_scene(work / "train", size=args.size, seed=0)
        test_scene = make_demo_scene(work / "test", size=args.size, seed=1)
        for seed in args.seeds:
            for name, model_sw, loss_sw in plan:
                row = run_row(name, model_sw, loss_sw, args, train_scene, test_scene, work, seed)
                rows.append(row)
                print(f"  {name} (seed {seed}): SAR-only mIoU {row['miou_sar_only']:.3f} "
                      f"in {row['train_seconds']:.0f} s", flush=True)
    if args.rows in ("all", "table4"):
        print("\nTable 4 (components)\n" + table(rows, [n for n, *_ in TABLE4]))
    if args.rows in ("all", "table5"):
        alias = {"STARS beta=0.2": "STARS", "STARS beta=0.2 w/o detach": "STARS w/o detach"}
        t5 = [dict(r, row=next((k for k, v in alias.items() if v == r["row"]), r["row"])) for r in rows]
        print("\nTable 5 (beta and the stop-gradient)\n" + table(t5, [n for n, *_ in TABLE5]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
