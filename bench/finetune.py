"""Fine-tuning against training from scratch, and class weighting, over seeds (issue 25).

Part 1 (fine-tuning). A base model is trained on demo scene 0 (`--base-steps`). Demo scene 1 (another
seed of the generator: other fields, roads and water) keeps 10 % of its labels, as random 128-pixel
blocks (`--label-share`; the rest is set to the ignore value); then, per seed, the same steps
(`--steps`) train a model from scratch (lr 1e-3) and fine-tune the base model on those labels
(`--init-from`, lr a tenth, with --freeze none and encoders). Each map of scene 1's SAR is scored
on the pixels whose labels were withheld.
Part 2 (class weights). Per seed and weighting (none, sqrt-inverse, inverse), a model is trained on
scene 0 and scored on scene 1: SAR-only mIoU and every class's IoU (roads are the thin class).
Prints mean and standard deviation over the seeds; never asserts. Usage:
    python bench/finetune.py [--seeds 0 1 2] [--base-steps 300] [--steps 150] [--parts finetune weights]
"""
from __future__ import annotations

import argparse
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
from stars_core.config import DataConfig, LossConfig, SegmentConfig, StarsConfig, TrainConfig  # noqa: E402
from stars_core.training.data import SceneSpec  # noqa: E402
from stars_core.demo_scene import make_demo_scene  # noqa: E402
from stars_core.evaluate import evaluate  # noqa: E402
from stars_core.segmentation.infer import segment  # noqa: E402
from stars_core.training.train import train  # noqa: E402

threads.configure("auto")
MODEL = StarsConfig(backbone="resnet18", encoder_width=32)


def spec(scene: dict, labels=None) -> list[SceneSpec]:
    return [SceneSpec(str(scene["sar"]), str(scene["optical"]), str(labels or scene["labels"]))]


def fit(scene_spec, out: Path, steps: int, lr: float, seed: int, classes: Path, **kw) -> Path:
    loss = LossConfig(class_weights=kw.pop("class_weights", "none"))
    return train(scene_spec, out, None if "init_from" in kw else MODEL, loss,
                 TrainConfig.for_steps(steps, batch_size=8, lr=lr, seed=seed, num_workers=0, device="cpu"),
                 DataConfig(chip_size=128, class_table=str(classes), ignore_values=(0,)), log=lambda *_: None,
                 **kw).path


def few_labels(scene: dict, share: float, seed: int, out: Path) -> tuple[Path, Path]:
    """Labels kept in random 128-px blocks covering `share` of the scene; and the withheld rest."""
    with rasterio.open(scene["labels"]) as src:
        y, profile = src.read(1), src.profile
    rng = np.random.default_rng(100 + seed)
    blocks = [(r, c) for r in range(0, y.shape[0], 128) for c in range(0, y.shape[1], 128)]
    keep = np.zeros(y.shape, bool)
    for i in rng.choice(len(blocks), max(1, round(share * len(blocks))), replace=False):
        r, c = blocks[i]
        keep[r:r + 128, c:c + 128] = True
    kept, withheld = out / f"labels_kept{seed}.tif", out / f"labels_withheld{seed}.tif"
    for path, data in ((kept, np.where(keep, y, 0)), (withheld, np.where(keep, 0, y))):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data.astype(y.dtype), 1)
    return kept, withheld


def score(model: Path, scene: dict, labels: Path, out: Path) -> dict:
    segment(model, scene["sar"], out, SegmentConfig(device="cpu"))
    return evaluate(out, labels, ignore_values=[0])


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0:.3f}"


def finetune_part(args, tmp: Path, s0: dict, s1: dict) -> None:
    base = fit(spec(s0), tmp / "base.stars", args.base_steps, 1e-3, 0, s0["classes"])
    print(f"(base model: {args.base_steps} steps on scene 0)", flush=True)
    runs = {"scratch": [], "fine-tune, freeze none": [], "fine-tune, freeze encoders": []}
    for seed in args.seeds:
        kept, withheld = few_labels(s1, args.label_share, seed, tmp)
        for name in runs:
            kw = {} if name == "scratch" else {"init_from": base, "freeze": name.rsplit(" ", 1)[-1]}
            lr = 1e-3 if name == "scratch" else 1e-4
            model = fit(spec(s1, kept), tmp / f"{seed}_{name[:9]}.stars", args.steps, lr, seed, s1["classes"], **kw)
            r = score(model, s1, withheld, tmp / "map.tif")
            runs[name].append(r["miou"])
            print(f"  seed {seed} {name}: mIoU {r['miou']:.3f}", flush=True)
    print(f"\n| scene 1, {100 * args.label_share:.0f} % of labels, {args.steps} steps | SAR-only mIoU on the withheld "
          f"pixels, mean ± sd over {len(args.seeds)} seeds |\n|---|---|")
    for name, values in runs.items():
        print(f"| {name} | {spread(values)} |")


def weights_part(args, tmp: Path, s0: dict, s1: dict) -> None:
    rows = {}
    for mode in ("none", "sqrt-inverse", "inverse"):
        for seed in args.seeds:
            model = fit(spec(s0), tmp / f"w_{mode}_{seed}.stars", args.steps, 1e-3, seed, s0["classes"],
                        class_weights=mode)
            r = score(model, s1, s1["labels"], tmp / "map.tif")
            rows.setdefault(mode, []).append(r)
            print(f"  {mode} seed {seed}: mIoU {r['miou']:.3f}", flush=True)
    names = list(rows["none"][0]["per_class"])
    print(f"\n| class weights ({args.steps} steps on scene 0, scored on scene 1) | mIoU | "
          + " | ".join(names) + " |\n|---|---|" + "---|" * len(names))
    for mode, results in rows.items():
        per = [spread([r["per_class"][n]["iou"] for r in results]) for n in names]
        print(f"| {mode} | {spread([r['miou'] for r in results])} | " + " | ".join(per) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--base-steps", type=int, default=300)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--label-share", type=float, default=0.1)
    ap.add_argument("--parts", nargs="+", default=["finetune", "weights"], choices=["finetune", "weights"])
    args = ap.parse_args()
    print(f"# finetune: ResNet-18 STARS width 32, 128-px chips, batch 8; {threads.describe()}, {platform.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        s0 = make_demo_scene(tmp / "s0", size=1024, seed=0)
        s1 = make_demo_scene(tmp / "s1", size=1024, seed=1)
        if "finetune" in args.parts:
            finetune_part(args, tmp, s0, s1)
        if "weights" in args.parts:
            weights_part(args, tmp, s0, s1)


if __name__ == "__main__":
    main()
