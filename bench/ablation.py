"""Method checks on the demo scene: the paper's Table 4 rows (which parts of STARS matter), Table 5
(beta, with and without the stop-gradient), Baseline-SAR, early fusion and STARS with the old mixed
shared BatchNorm statistics; every row with the same budget, over several seeds (mean ± std).

Every row trains on demo scene seed 0 and is tested on demo scene seed 1 (same generator, unseen
ground) from SAR alone; `--sar-noise high` (or both) uses the harder scenes where SAR alone
separates the classes poorly (same labels and optical image; the same recipe runs on both). Reported per row: SAR-only mIoU on the test scene, the fused mIoU (both
modalities) where the model has a fused branch, and, for STARS rows, the feature-collapse indicator
(spread of the unit-normalised shared features x sqrt(channels): ~1 spread, 0 collapsed) and the
diagonal gap of the cross-modal class similarity matrix, both on the validation chips at the end.
Prints, never asserts. One seed unless --seeds: differences of a few points are noise here. Usage:
    python bench/ablation.py [--steps 200] [--size 512] [--seeds 0 1 2] [--rows all|table4|table5|core|exp]
        [--sar-noise normal|high|both] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from stars_core import threads  # first: the toolbox's thread policy, set before torch loads

threads.prepare_environment()
import torch

from stars_core.config import DataConfig, LossConfig, SegmentConfig, StarsConfig, TrainConfig
from stars_core.training.data import SceneSpec
from stars_core.demo_scene import make_demo_scene
from stars_core.evaluate import evaluate
from stars_core.segmentation.infer import segment
from stars_core.models import pretrained_plan
from stars_core.training.train import train

threads.configure("auto")

STARS = dict(mode="stars")
TABLE4 = [  # (row name, model switches, loss switches): the paper's rows (trans, L_ncs, L_psc), then ours
    ("Baseline-SAR (single)", dict(mode="single"), {}),
    ("exp-1: L_ncs", dict(STARS, use_translation=False), dict(use_psc=False)),
    ("exp-2: trans + L_ncs", STARS, dict(use_psc=False)),
    ("exp-3: L_ncs + L_psc", dict(STARS, use_translation=False), {}),
    ("STARS (trans + L_ncs + L_psc)", STARS, {}),
    ("STARS, old mixed statistics", dict(STARS, shared_norm="mixed"), {}),
    ("early fusion (concat)", dict(mode="concat"), {}),
]
CORE = [TABLE4[0], TABLE4[4], TABLE4[5]]  # Baseline-SAR, STARS, STARS with mixed statistics
EXP = [TABLE4[1], TABLE4[2], TABLE4[3], TABLE4[6]]  # the rest of Table 4: exp-1..3 and early fusion
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
    model = work / f"{abs(hash((name, seed, str(train_scene['sar']))))}.stars"
    t0 = time.perf_counter()
    result = train(spec, model, model_cfg, loss_cfg, train_cfg, data_cfg, log=lambda *_: None,
                   pretrained_m1=args.pretrained_m1, pretrained_m2=args.pretrained_m2)
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
    ap.add_argument("--rows", choices=["all", "table4", "table5", "table5-rest", "core", "exp"], default="all",
                    help="table5-rest: Table 5 without beta=0.2 with the stop-gradient, which is the STARS row "
                    "of --rows core (same seeds, same recipe: merge the two runs' JSON)")
    ap.add_argument("--sar-noise", choices=["normal", "high", "both"], default="normal")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--chip", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, help="also write every row as JSON")
    ap.add_argument("--pretrained-m1", help="SAR weights, given to every row alike (default: none, from scratch)")
    ap.add_argument("--pretrained-m2", help="optical weights, given to every row alike (the baselines' encoder "
                    "takes them too when --pretrained-m1 is not given)")
    args = ap.parse_args()
    stars_row = TABLE4[4][0]
    plan = {"all": TABLE4 + [r for r in TABLE5 if r[0] != "STARS beta=0.2"], "table4": TABLE4,
            "table5": TABLE5, "table5-rest": [r for r in TABLE5 if r[0] != "STARS beta=0.2"], "core": CORE,
            "exp": EXP}[args.rows]
    noises = ["normal", "high"] if args.sar_noise == "both" else [args.sar_noise]
    print(f"# ablation: {args.backbone} width {args.width}, {args.steps} steps of batch {args.batch} on {args.chip}-px "
          f"chips, lr {args.lr}, demo scene {args.size} px (train seed 0, test seed 1), SAR noise {noises}, "
          f"seeds {args.seeds}, torch {torch.__version__}, {threads.describe()}, {platform.machine()}", flush=True)
    given = {k for k, v in (("m1", args.pretrained_m1), ("m2", args.pretrained_m2)) if v}
    print("# starting weights: " + ("none, every row trains from scratch" if not given else "the same files for "
          "every row; " + "; ".join(sorted({f"{m}: " + ", ".join(f"{p} {k or 'scratch'}" for p, k in
                                                                 pretrained_plan(m, given).items())
                                            for m in ("stars", "single", "concat")}))), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for noise in noises:
            train_scene = make_demo_scene(work / f"train_{noise}", size=args.size, seed=0, sar_noise=noise)
            test_scene = make_demo_scene(work / f"test_{noise}", size=args.size, seed=1, sar_noise=noise)
            for seed in args.seeds:
                for name, model_sw, loss_sw in plan:
                    row = run_row(name, model_sw, loss_sw, args, train_scene, test_scene, work, seed)
                    row["sar_noise"] = noise
                    rows.append(row)
                    print(f"  [{noise}] {name} (seed {seed}): SAR-only mIoU {row['miou_sar_only']:.3f} "
                          f"in {row['train_seconds']:.0f} s", flush=True)
    for noise in noises:
        mine = [r for r in rows if r["sar_noise"] == noise]
        if args.rows in ("all", "table4", "core", "exp"):
            names = [n for n, *_ in {"core": CORE, "exp": EXP}.get(args.rows, TABLE4)]
            print(f"\nTable 4 (components), SAR noise {noise}\n" + table(mine, names))
        if args.rows in ("all", "table5", "table5-rest"):
            t5 = [dict(r, row="STARS beta=0.2") if r["row"] == stars_row else r for r in mine]
            print(f"\nTable 5 (beta and the stop-gradient), SAR noise {noise}\n" + table(t5, [n for n, *_ in TABLE5]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
