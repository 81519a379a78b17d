"""CPU training speed, one change at a time: channels-last memory format and bf16 autocast.

Times whole training steps (STARS forward with both modalities, the full STARS loss, backward, Adam)
on synthetic batches, so only the arithmetic differs: fp32 (today's CPU path), channels-last, bf16
autocast, and both. Two rounds in alternating order; the median step time of each. Configurations:
the demo recipe (ResNet-18 at width 32, 128-pixel chips, batch 8) and ResNet-50 at 256-pixel chips
(batch 2). bf16 on a CPU pays only with AVX-512 BF16 or AMX: the CPU's flags are printed. Run alone on
the machine. `--validate SEED...` then trains the demo recipe for real (`stars_core.training.train.train` on the
demo scene, `--val-steps` steps) with the toolbox's automatic choice and with fp32 (`amp=False`), per
seed (`--variants`: the automatic choice, `--cpu-bf16`, `--no-amp`), and prints each run's validation mIoU from SAR alone and its minutes. Prints, never asserts. Usage:
    python bench/cpu_train_precision.py [--configs demo r50] [--steps 12 6] [--rounds 2]
                                        [--validate 0 1 2 --val-steps 200]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stars_core import threads  # noqa: E402  (the toolbox's thread policy, before torch loads)

threads.prepare_environment()
import torch  # noqa: E402

from stars_core.config import LossConfig, StarsConfig  # noqa: E402
from stars_core.training.losses import stars_loss  # noqa: E402
from stars_core.models import build_model  # noqa: E402

CONFIGS = {"demo": (StarsConfig(in_channels=(2, 4), num_classes=6, backbone="resnet18", encoder_width=32), 128, 8),
           "r50": (StarsConfig(in_channels=(2, 4), num_classes=6, backbone="resnet50"), 256, 2)}
VARIANTS = {"fp32": (False, False), "channels-last": (True, False), "bf16": (False, True), "both": (True, True)}


def steps_per_second(cfg: StarsConfig, chip: int, batch: int, channels_last: bool, bf16: bool, steps: int) -> float:
    torch.manual_seed(0)
    model = build_model(cfg).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x1 = torch.randn(batch, 2, chip, chip).to(memory_format=fmt)
    x2 = torch.randn(batch, 4, chip, chip).to(memory_format=fmt)
    y = torch.randint(0, cfg.num_classes, (batch, chip, chip))
    gen = torch.Generator().manual_seed(0)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    for step in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        with cast:
            loss, _ = stars_loss(model(x1, x2), y, LossConfig(), gen, ())
        optimizer.zero_grad(set_to_none=True)
        loss.float().backward()
        optimizer.step()
        if step >= 2:
            times.append(time.perf_counter() - start)
    return 1 / statistics.median(times)


VALIDATE = {"automatic": dict(amp=True), "bf16": dict(amp=True, cpu_bf16=True), "fp32": dict(amp=False)}


def validate(seeds: list[int], steps: int, variants: list[str]) -> None:
    import tempfile

    from stars_core.config import DataConfig, TrainConfig
    from stars_core.training.data import SceneSpec
    from stars_core.demo_scene import make_demo_scene
    from stars_core.devices import TrainingPrecision
    from stars_core.training.train import train

    print(f"\nautomatic choice here: {TrainingPrecision.choose(torch.device('cpu'), True).why}")
    rows = []
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
        scene = make_demo_scene(Path(tmp) / "scene", size=1024, seed=0)
        spec = [SceneSpec(str(scene["sar"]), str(scene["optical"]), str(scene["labels"]))]
        for seed in seeds:
            for name in variants:
                start = time.perf_counter()
                result = train(spec, Path(tmp) / f"{name}_{seed}.stars", CONFIGS["demo"][0],
                               train_cfg=TrainConfig.for_steps(steps, batch_size=8, lr=1e-3, num_workers=0,
                                                               device="cpu", seed=seed, **VALIDATE[name]),
                               data_cfg=DataConfig(chip_size=128, class_table=str(scene["classes"]),
                                                   ignore_values=(0,)), log=lambda *_: None)
                minutes = (time.perf_counter() - start) / 60
                miou = result.summary["validation"]["val_m1_miou"]
                rows.append((seed, name, miou, minutes))
                print(f"  seed {seed} {name}: validation mIoU {miou:.4f} from SAR alone, {minutes:.1f} min", flush=True)
    print(f"\n| demo recipe, {steps} steps | validation mIoU, SAR alone (per seed) | mean ± sd | minutes (mean) |"
          f"\n|---|---|---:|---:|")
    for name in variants:
        mine = [r for r in rows if r[1] == name]
        mious = [r[2] for r in mine]
        sd = statistics.stdev(mious) if len(mious) > 1 else 0.0
        print(f"| {name} | {', '.join(f'{m:.4f}' for m in mious)} | {statistics.mean(mious):.4f} ± {sd:.4f} | "
              f"{statistics.mean(r[3] for r in mine):.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--steps", type=int, nargs="+", default=[12, 6], help="timed steps per config, in order")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--validate", type=int, nargs="*", metavar="SEED", help="train the demo recipe per seed")
    ap.add_argument("--val-steps", type=int, default=200)
    ap.add_argument("--variants", nargs="+", default=list(VALIDATE), choices=list(VALIDATE),
                    help="with --validate: automatic (the toolbox's choice), bf16 (--cpu-bf16), fp32 (--no-amp)")
    args = ap.parse_args()
    threads.configure("auto")
    flags = sorted({f for f in open("/proc/cpuinfo").read().split() if f in ("avx2", "avx512f", "avx512_bf16",
                                                                             "amx_bf16", "amx_tile", "avx512_vnni")})
    print(f"{platform.node()}, {os.cpu_count()} cores ({', '.join(flags)}); torch {torch.__version__}, "
          f"{threads.describe()}")
    for name, steps in zip(args.configs, args.steps):
        cfg, chip, batch = CONFIGS[name]
        seen = {v: [] for v in VARIANTS}
        for r in range(args.rounds):
            order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                seen[variant].append(steps_per_second(cfg, chip, batch, *VARIANTS[variant], steps))
                print(f"  {name} round {r + 1} {variant}: {seen[variant][-1]:.3f} steps/s", flush=True)
        base = statistics.median(seen["fp32"])
        print(f"\n| {name}: {cfg.backbone} width {cfg.encoder_width}, {chip}-px chips, batch {batch} | steps/s "
              f"(median of {args.rounds} rounds) | x fp32 |\n|---|---:|---:|")
        for variant, values in seen.items():
            value = statistics.median(values)
            print(f"| {variant} | {value:.3f} ({', '.join(f'{v:.3f}' for v in values)}) | {value / base:.2f} |")
    if args.validate:
        validate(args.validate, args.val_steps, args.variants)


if __name__ == "__main__":
    main()
