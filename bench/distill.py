"""`stars distill`: how close a student comes to its teacher, and how much faster it segments.

Part 1 (accuracy, --seeds): the teacher is `make demo`'s model (trained on sheets A1, A2, B1 of the
demo scene); each seed distils a student on the whole demo SAR without labels (the use case: SAR of
the area to map, no labels) and both models map the scene on the default runtime; each map is scored
on the held-out sheet B2 against the reference labels, with the student's pixel agreement with the
teacher there. Part 2 (speed, --size): `stars segment` of a SIZE x SIZE SAR raster (the demo SAR
repeated by a VRT) on the default runtime, each model in its own process after a first run that made
its export, extrapolated to a Sentinel-1 IW scene (25,000 x 17,000 px) by pixel count: a ResNet-50
STARS model (the paper's), the demo's ResNet-18 STARS teacher, and the default student. Speed does not
depend on the weights. Part 3 (--real DIR): on the real TerraMesh tiles, a STARS teacher trained on four
(bench/real.py's fold) and a student distilled from it on all five tiles' Sentinel-1 without labels,
both scored on the held-out tile. Part 4 (--step-speed N): distillation steps in the CPU's default
precision against plain fp32. Part 5 (--macs): each model's multiply-accumulates per tile. Part 1
with --labelled: students also learn the labels outside the sheet. Prints, never asserts. Usage:
    python bench/distill.py [--seeds 0 1 2] [--steps 600] [--size 4096] [--skip-accuracy] [--skip-speed]
                            [--tiles 512 1024] [--students-only] [--real ../shared/data/terramind]
                            [--model demo_out/model.stars --scene demo_out/scene --sheet B2]
                            [--labelled] [--no-amp] [--decoder-channels 64] [--step-speed 60 --rounds 2] [--macs]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
IW_PIXELS = 25_000 * 17_000


def sheet_window(scene: Path, sheet: str):
    from rasterio.windows import from_bounds

    from stars_core.raster import read_polygons

    _wkt, items = read_polygons(scene / "sheets.gpkg", "name")
    xs, ys = zip(*next(g for g, name in items if name == sheet)["coordinates"][0])
    with rasterio.open(scene / "sar.tif") as src:
        return from_bounds(min(xs), min(ys), max(xs), max(ys), src.transform).round_offsets().round_lengths()


def score(map_path: Path, labels: Path, window, tmp: Path, name: str) -> tuple[float, np.ndarray]:
    from scene_speed import crop

    from stars_core.evaluate import evaluate

    sheet = crop(map_path, window, tmp / f"{name}_sheet.tif")
    with rasterio.open(sheet) as ds:
        return evaluate(sheet, labels, ignore_values=[0])["miou"], ds.read(1)


def accuracy(args, tmp: Path) -> None:
    from stars_core.config import SegmentConfig
    from stars_core.distill import DistillConfig, distill
    from stars_core.segmentation.infer import segment
    from scene_speed import crop

    model, scene = Path(args.model), Path(args.scene)
    window = sheet_window(scene, args.sheet)
    labels = crop(scene / "labels.tif", window, tmp / "labels_sheet.tif")
    cfg = SegmentConfig(device="cpu")
    segment(model, scene / "sar.tif", tmp / "teacher.tif", cfg)
    teacher_miou, teacher_map = score(tmp / "teacher.tif", labels, window, tmp, "teacher")
    rows, labels_arg, ignore = [], None, ()
    if args.labelled:  # the reference labels with the held-out sheet blanked (0: no data), as a user's would be
        labels_arg = [tmp / "labels_without_sheet.tif"]
        with rasterio.open(scene / "labels.tif") as src:
            profile, lab = src.profile, src.read(1)
        lab[window.toslices()] = 0
        with rasterio.open(labels_arg[0], "w", **profile) as dst:
            dst.write(lab, 1)
        ignore = (0,)
    what = ("labels outside the sheet" if args.labelled else "no labels") + (
        f", decoder {args.decoder_channels}" if args.decoder_channels else "")
    for seed in args.seeds:
        out = tmp / f"student_{seed}.stars"
        result = distill(model, [scene / "sar.tif"], out, DistillConfig(steps=args.steps, seed=seed, device="cpu",
                                                                          amp=not args.no_amp, ignore_values=ignore,
                                                                          decoder_channels=args.decoder_channels),
                         labels=labels_arg, log=print if seed == args.seeds[0] else lambda *_: None)
        segment(out, scene / "sar.tif", tmp / f"student_{seed}.tif", cfg)
        miou, student_map = score(tmp / f"student_{seed}.tif", labels, window, tmp, f"student_{seed}")
        valid = teacher_map != 255
        rows.append((seed, miou, float((student_map == teacher_map)[valid].mean()), result.seconds / 60))
        print(f"seed {seed}: student mIoU {miou:.4f} (teacher {teacher_miou:.4f}), agreement on {args.sheet} "
              f"{rows[-1][2]:.4f}, {rows[-1][3]:.1f} min", flush=True)
    mious = [r[1] for r in rows]
    print(f"\n| held-out sheet {args.sheet}, default runtime | SAR-only mIoU | pixels equal to the teacher's map |"
          f" distillation minutes |\n|---|---:|---:|---:|\n| teacher ({model.name}) | {teacher_miou:.4f} | 1 | |")
    for seed, miou, same, minutes in rows:
        print(f"| student, seed {seed} ({args.steps} steps, {what}) | {miou:.4f} | {same:.4f} | {minutes:.1f} |")
    spread = statistics.stdev(mious) if len(mious) > 1 else 0.0
    print(f"| student, mean ± sd over {len(mious)} seeds | {statistics.mean(mious):.4f} ± {spread:.4f} | "
          f"{statistics.mean(r[2] for r in rows):.4f} | |")
    print(f"student - teacher: {100 * (statistics.mean(mious) - teacher_miou):+.2f} points of mIoU")


def step_speed(args, tmp: Path) -> None:
    """Part 4 (--step-speed N): distillation steps per second, the device's default precision against
    plain fp32 (--no-amp), N steps each, alternating for --rounds rounds; the teacher is --model."""
    from stars_core.distill import DistillConfig, distill

    scene = Path(args.scene)
    seconds = {True: [], False: []}
    for _ in range(args.rounds):
        for amp in (False, True):
            lines = []
            result = distill(args.model, [scene / "sar.tif"], tmp / "speed.stars",
                             DistillConfig(steps=args.step_speed, device="cpu", amp=amp), log=lines.append)
            seconds[amp].append(result.seconds)
            print(f"{next(l for l in lines if l.startswith('precision'))}: {result.seconds:.1f} s", flush=True)
    fp32, default = statistics.median(seconds[False]), statistics.median(seconds[True])
    print(f"\n{args.step_speed} steps (with the 16-chip comparison), median of {args.rounds}: fp32 {fp32:.1f} s, "
          f"default {default:.1f} s: {fp32 / default:.2f}x")


def macs(args, tmp: Path) -> None:
    """Part 5 (--macs): multiply-accumulates of each model's SAR-only pass on one 512-pixel tile
    (PyTorch's flop counter; 2 SAR bands, 6 classes): what the int8 network has to compute."""
    import torch
    from model_speed import count_flops

    from stars_core.config import StarsConfig
    from stars_core.distill import DistillConfig
    from stars_core.distill.student import student_config
    from stars_core.models import build_model

    r50 = StarsConfig(backbone="resnet50", in_channels=(2, 4), num_classes=6)
    models = {"ResNet-50 STARS (the paper's)": r50,
              "ResNet-18 STARS, width 64": StarsConfig(backbone="resnet18", in_channels=(2, 4), num_classes=6),
              "demo teacher (ResNet-18 STARS, width 32)": StarsConfig(backbone="resnet18", encoder_width=32,
                                                                      in_channels=(2, 4), num_classes=6),
              "student (ResNet-18 single, width 32, decoder 128)": student_config(r50, DistillConfig())}
    print("\n| model | GMAC per 512-pixel tile, SAR only |\n|---|---:|")
    for name, cfg in models.items():
        model = build_model(cfg).eval()
        with torch.no_grad():
            flops = count_flops(lambda: model(torch.zeros(1, 2, 512, 512)))
        print(f"| {name} | {flops / 2e9:.1f} |")


def timed_segment(model: Path, src: Path, out: Path, tile: int = 512, overlap: int | None = None) -> tuple[float, float]:
    """Seconds and peak resident memory (GB) of `stars segment`, after a first run that made the export."""
    from series_speed import timed

    argv = ["segment", str(model), str(src), str(out), "--device", "cpu", "--tile-size", str(tile),
            *(["--overlap", str(overlap)] if overlap is not None else [])]
    timed(argv, "first run (makes and caches the export)")
    run = timed(argv, "stars segment")
    return run["seconds"], run["peak_gb"]


def speed(args, tmp: Path) -> None:
    from segment_memory import repeat_vrt

    from scene_speed import train_r50
    from stars_core.demo_scene import make_demo_scene
    from stars_core.distill import DistillConfig, distill

    scene = make_demo_scene(tmp / "scene", size=1024, seed=0)
    src = repeat_vrt(scene["sar"], args.size, tmp / f"sar_{args.size}.vrt")
    r50 = train_r50(scene, tmp / "r50.stars", 2)
    student = distill(r50, [scene["sar"]], tmp / "student.stars", DistillConfig(steps=1, batch_size=1, device="cpu"),
                      log=lambda *_: None).path
    models = {"ResNet-50 STARS (the paper's)": r50}
    if Path(args.model).is_file():
        models["demo teacher (ResNet-18 STARS, width 32)"] = Path(args.model)
    models["student (ResNet-18 single, width 32, decoder 128)"] = student
    models = {k: v for k, v in models.items() if not args.students_only or k.startswith("student")}
    seconds = {(name, tile): timed_segment(path, src, tmp / "map.tif", tile, args.overlap) for tile in args.tiles
               for name, path in models.items()}
    cpu = sorted({f for f in open("/proc/cpuinfo").read().split() if f in ("avx2", "avx512_vnni", "amx_tile")})
    print(f"\n{platform.node()}, {os.cpu_count()} cores ({', '.join(cpu)}); `stars segment` default runtime, overlap "
          f"{args.overlap or 'an eighth of the tile'}, {args.size} x {args.size}, extrapolated to an IW scene by pixels")
    base = seconds.get(("ResNet-50 STARS (the paper's)", args.tiles[0]), (None,))[0]
    print("| model | tile | seconds (raster) | IW-scene minutes | speed-up over ResNet-50 STARS | peak memory (GB) |\n"
          "|---|---:|---:|---:|---:|---:|")
    for (name, tile), (s, peak) in seconds.items():
        print(f"| {name} | {tile} | {s:.1f} | {s * IW_PIXELS / args.size ** 2 / 60:.1f} | "
              f"{'' if base is None else f'{base / s:.2f}x'} | {peak:.2f} |")


def real(args, tmp: Path) -> None:
    """Part 3: a teacher trained on four real TerraMesh tiles (bench/real.py's fold, STARS), a student
    distilled from it on all five tiles' Sentinel-1 without labels, both scored on the held-out tile."""
    from types import SimpleNamespace

    from real import LULC, fold

    from stars_core.config import SegmentConfig
    from stars_core.distill import DistillConfig, distill
    from stars_core.evaluate import evaluate
    from stars_core.segmentation.infer import segment

    data = Path(args.real)
    tiles = sorted(p.stem for p in (data / "S1RTC").glob("*.tif"))
    classes = tmp / "lulc.csv"
    classes.write_text("value,name,color\n" + "".join(f"{v},{n},{c}\n" for v, n, c in LULC))
    fold_args = SimpleNamespace(steps=150, batch=8, lr=1e-3, seed=0, device="cpu", chip=128, backbone="resnet18",
                                width=32, class_weights="none", pretrained_m1=None, pretrained_m2=None)
    print("\n| held-out real tile | teacher mIoU | student mIoU | pixels equal to the teacher's map |\n|---|---:|---:|---:|")
    for tile in tiles[:args.real_folds]:
        teacher = fold(tile, tiles, data, "stars", fold_args, tmp, classes)
        model, teacher_map = tmp / f"{tile}_stars.stars", tmp / f"{tile}_stars.tif"
        student = distill(model, [data / "S1RTC" / f"{t}.tif" for t in tiles], tmp / f"{tile}_student.stars",
                          DistillConfig(steps=args.real_steps, device="cpu"), log=lambda *_: None).path
        student_map = tmp / f"{tile}_student.tif"
        segment(student, data / "S1RTC" / f"{tile}.tif", student_map, SegmentConfig(tile_size=256, device="cpu"))
        report = evaluate(student_map, data / "LULC" / f"{tile}.tif", classes, ignore_values=[0])
        with rasterio.open(teacher_map) as a, rasterio.open(student_map) as b:
            ta, sb = a.read(1), b.read(1)
        same = float((ta == sb)[ta != 255].mean())
        print(f"| {tile} | {teacher['miou']:.4f} | {report['miou']:.4f} | {same:.4f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--model", default=str(ROOT / "demo_out" / "model.stars"))
    ap.add_argument("--scene", default=str(ROOT / "demo_out" / "scene"))
    ap.add_argument("--sheet", default="B2")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--step-speed", type=int, metavar="N", help="part 4: N distillation steps, default precision "
                    "against --no-amp")
    ap.add_argument("--rounds", type=int, default=2, help="part 4's rounds")
    ap.add_argument("--macs", action="store_true", help="part 5: each model's multiply-accumulates per tile")
    ap.add_argument("--labelled", action="store_true", help="part 1: students also learn the labels outside the sheet")
    ap.add_argument("--decoder-channels", type=int, help="part 1: the students' decoder channels (default: "
                    "stars distill's)")
    ap.add_argument("--no-amp", action="store_true", help="part 1: students in plain fp32 (stars distill --no-amp)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--tiles", type=int, nargs="+", default=[512], help="tile sizes for part 2")
    ap.add_argument("--real", metavar="DIR", help="part 3: the TerraMesh tiles (e.g. ../shared/data/terramind)")
    ap.add_argument("--real-folds", type=int, default=1, help="part 3: how many tiles to hold out in turn")
    ap.add_argument("--real-steps", type=int, default=300, help="part 3: the student's steps")
    ap.add_argument("--students-only", action="store_true", help="part 2 with the student alone")
    ap.add_argument("--overlap", type=int, help="part 2's tile overlap (default: the toolbox's, an eighth of a tile)")
    args = ap.parse_args()
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
        if not args.skip_accuracy:
            accuracy(args, Path(tmp))
        if not args.skip_speed:
            speed(args, Path(tmp))
        if args.real:
            real(args, Path(tmp))
        if args.step_speed:
            step_speed(args, Path(tmp))
        if args.macs:
            macs(args, Path(tmp))


if __name__ == "__main__":
    main()
