"""Whole-scene speed on the CPU, runtime by runtime: `stars segment` of a 4096 x 4096 SAR raster with a
ResNet-50 STARS model (512-pixel tiles), each run in its own process, extrapolated to a Sentinel-1 IW
scene (25,000 x 17,000 pixels: the set-up once, the tile loop by the scene's tile count), with each map's pixel agreement with eager PyTorch's; then, with the
demo's trained model (`make demo`), each runtime's SAR-only mIoU on the held-out sheet and how far the
map moves along the tile seams.

OpenVINO (a PyPI package, `pip install openvino`: 2026.4 declares numpy >= 1.16.6, so it sits beside
Debian's numpy 1.24) runs the same exported graphs (the toolbox uses it where it is installed).
"default" is `stars segment` with no runtime flag: the runtime, engine and overlap a user gets.
Part 1 (speed). The model is a ResNet-50 STARS (`--backbone`) trained briefly on the demo scene
(`--r50-steps`; its speed does not depend on its weights, its agreement does a little). The raster repeats the 1024 x
1024 demo SAR by a VRT. The one-time export and calibration of the ONNX graphs (what a user's first
run costs) is timed apart, on the demo SAR. Variants: the runtimes (torch, onnx, int8), then one
change at a time to int8: tile overlap 64 instead of 128, 2 tiles per run, ONNX Runtime's memory
arena off, basic instead of all graph optimisations, 1 thread instead of the toolbox's count.
Part 2 (accuracy). On the held-out sheet of the demo (`--model`, `--scene`, `--sheet`, default
`make demo`'s demo_out), each runtime and overlap at 512-pixel tiles: mIoU against the reference,
pixels equal to eager PyTorch (overlap 128), and that share within 16 pixels of a seam between
tiles and elsewhere. Prints, never asserts. Usage:
    python bench/scene_speed.py [--size 4096] [--variants torch onnx int8 int8-o64 ...] [--r50-steps 60]
                                [--model demo_out/model.stars --scene demo_out/scene --sheet B2]
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

IW_WIDTH, IW_HEIGHT = 25_000, 17_000
IW_PIXELS = IW_WIDTH * IW_HEIGHT
VARIANTS = {  # name: (runtime, overlap, batch, ONNX Runtime session options, threads, engine)
    "torch": ("torch", 128, 1, None, None, None),
    "onnx": ("onnx", 128, 1, None, None, "onnxruntime"),
    "int8": ("int8", 128, 1, None, None, "onnxruntime"),
    "int8-o64": ("int8", 64, 1, None, None, "onnxruntime"),
    "int8-batch2": ("int8", 128, 2, None, None, "onnxruntime"),
    "int8-no-arena": ("int8", 128, 1, {"enable_cpu_mem_arena": False}, None, "onnxruntime"),
    "int8-basic-opt": ("int8", 128, 1, {"graph_optimization_level": "ORT_ENABLE_BASIC"}, None, "onnxruntime"),
    "int8-1-thread": ("int8", 128, 1, None, 1, "onnxruntime"),
    "openvino-onnx": ("onnx", 128, 1, None, None, "openvino"),  # the same exported graphs in OpenVINO
    "openvino-int8": ("int8", 128, 1, None, None, "openvino"),
    "openvino-int8-o64": ("int8", 64, 1, None, None, "openvino"),
    "default": (None, None, None, None, None, None),  # what `stars segment` does with no runtime flag
}

CHILD = """
import json, os, sys
model, src, out, spec = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
if spec["engine"]:
    os.environ["STARS_ONNX_ENGINE"] = spec["engine"]
from stars_core import threads
threads.prepare_environment()
from stars_core.engines import auto
from stars_core.segmentation import infer
from stars_core.config import SegmentConfig
from stars_core.segmentation.infer import segment
threads.configure("auto")
sys.path.insert(0, "bench")
from pipeline_profile import TIMES as parts, timed
infer.open_runner = timed("setup", infer.open_runner)
auto.fast_runner = timed("setup", auto.fast_runner)
infer._predict = timed("loop", infer._predict)
cfg = SegmentConfig(tile_size=512, overlap=spec["overlap"], batch_size=spec["batch"], device="cpu",
                    runtime=spec["runtime"] or "auto")
runner = model
if spec["options"] is not None or spec["threads"] is not None:
    import onnxruntime as ort
    from stars_core.engines.auto import cached_path
    from stars_core.engines.onnx_model import OnnxModel
    options = {k: (getattr(ort.GraphOptimizationLevel, v) if k == "graph_optimization_level" else v)
               for k, v in (spec["options"] or {}).items()}
    runner = OnnxModel(cached_path(model, spec["runtime"], "m1", 512), "cpu", threads=spec["threads"],
                       session_options=options)
r = segment(runner, src, out, cfg)
print(json.dumps({"seconds": r.seconds, "tiles": r.tiles, "runtime": r.runtime, "engine": r.device,
                  "setup": parts["setup"], "loop": parts["loop"], "overlap": cfg.overlap,
                  "peak_mb": int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024}))
"""


def run_child(model: Path, src: Path, out: Path, name: str) -> dict:
    runtime, overlap, batch, options, nthreads, engine = VARIANTS[name]
    spec = {"runtime": runtime, "overlap": overlap, "batch": batch, "options": options, "threads": nthreads,
            "engine": engine}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(model), str(src), str(out), json.dumps(spec)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        return {"failed": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def train_r50(scene: dict, out: Path, steps: int, backbone: str = "resnet50") -> Path:
    from stars_core.config import DataConfig, StarsConfig, TrainConfig
    from stars_core.training.data import SceneSpec
    from stars_core.training.train import train

    spec = [SceneSpec(str(scene["sar"]), str(scene["optical"]), str(scene["labels"]))]
    return train(spec, out, StarsConfig(backbone=backbone),
                 train_cfg=TrainConfig.for_steps(steps, batch_size=4, lr=1e-3, num_workers=0, device="cpu"),
                 data_cfg=DataConfig(chip_size=128, class_table=str(scene["classes"]), ignore_values=(0,)),
                 log=lambda *_: None).path


def speed(args, tmp: Path) -> None:
    from segment_memory import repeat_vrt

    from stars_core.demo_scene import make_demo_scene

    scene = make_demo_scene(tmp / "scene", size=1024, seed=0)
    t0 = time.perf_counter()
    model = tmp / "r50.stars"
    if args.r50 and Path(args.r50).is_file():  # a model of an earlier run (its exports are made again here)
        import shutil

        shutil.copy(args.r50, model)
        print(f"(STARS model from {args.r50})")
    else:
        train_r50(scene, model, args.r50_steps, args.backbone)
        print(f"({args.backbone} STARS trained {args.r50_steps} steps on the demo scene in "
              f"{time.perf_counter() - t0:.0f} s)")
        if args.r50:
            import shutil

            shutil.copy(model, args.r50)
    for runtime in ("onnx", "int8"):  # the first run's one-time cost, apart
        r = run_child(model, scene["sar"], tmp / f"warm_{runtime}.tif", runtime)
        info = json.loads(next(tmp.glob(f"r50.*.m1-512{'.int8w7' if runtime == 'int8' else ''}.json")).read_text())
        print(f"(first {runtime} run: export{' and calibration' if runtime == 'int8' else ''} and agreement check "
              f"{r.get('seconds', float('nan')):.0f} s in all on the 1024 demo SAR; measured agreement "
              f"{100 * info['agreement']:.2f} % on {info['agreement_tiles']} tiles)", flush=True)
    src = repeat_vrt(scene["sar"], args.size, tmp / f"sar_{args.size}.vrt")
    print(f"\n| variant ({args.size} x {args.size}, 512 tiles) | tiles | seconds | set-up s | peak RSS MB | IW scene, "
          f"minutes | vs torch | pixels equal to torch |\n|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    ref, base = None, None
    for name in args.variants:
        out = tmp / f"map_{name}.tif"
        r = run_child(model, src, out, name)
        if "failed" in r:
            print(f"| {name} | failed: {r['failed']} | | | | | |", flush=True)
            continue
        m = read(out)
        if name == "torch":
            ref, base = m, r["seconds"]
        equal = f"{(m == ref).mean():.4f}" if ref is not None else "-"
        ratio = f"{base / r['seconds']:.2f}x" if base else "-"
        print(f"| {name} ({r['engine']}) | {r['tiles']} | {r['seconds']:.1f} | {r['setup']:.1f} | {r['peak_mb']:.0f} | "
              f"{iw_minutes(r, args.size):.1f} | {ratio} | {equal} |", flush=True)
        if name != "torch":
            out.unlink()


def iw_minutes(r: dict, size: int) -> float:
    """The IW scene's minutes from one run: its set-up once (opening the model, compiling the export),
    the tile loop per tile times the IW scene's tile count at the run's overlap, and the rest
    (overviews, the colour table) in proportion to the pixels."""
    from stars_core.tiling import TileGrid

    iw_tiles = len(TileGrid.build(IW_HEIGHT, IW_WIDTH, 512, r["overlap"]))
    rest = r["seconds"] - r["setup"] - r["loop"]
    return (r["setup"] + r["loop"] / r["tiles"] * iw_tiles + rest * IW_PIXELS / (size * size)) / 60


def seam_mask(height: int, width: int, overlap: int, band: int = 16) -> np.ndarray:
    """Pixels within `band` of the middle of an overlap between neighbouring 512-pixel tiles."""
    from stars_core.tiling import TileGrid

    grid = TileGrid.build(height, width, 512, overlap)
    mask = np.zeros((height, width), bool)
    for starts, size, axis in ((grid.rows, height, 0), (grid.cols, width, 1)):
        for s in starts[1:]:
            mid = s + grid.overlap[axis] // 2
            lo, hi = max(0, mid - band), min(size, mid + band)
            if axis == 0:
                mask[lo:hi] = True
            else:
                mask[:, lo:hi] = True
    return mask


def crop(path: Path, window, out: Path) -> Path:
    with rasterio.open(path) as src:
        profile = dict(src.profile, width=int(window.width), height=int(window.height),
                       transform=src.window_transform(window))
        data, tags = src.read(1, window=window), src.tags(1)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data, 1)
        dst.update_tags(1, **tags)
    return out


def accuracy(args, tmp: Path) -> None:
    """The whole demo scene at 512-px tiles (seams cross the held-out sheet), scored on the sheet."""
    import os

    from rasterio.windows import from_bounds

    from stars_core.config import SegmentConfig
    from stars_core.evaluate import evaluate
    from stars_core.segmentation.infer import segment
    from stars_core.raster import read_polygons

    model, scene = Path(args.model), Path(args.scene)
    if not model.is_file():
        print(f"\n(part 2 skipped: no trained model at {model}; run `make demo` or give --model and --scene)")
        return
    _wkt, items = read_polygons(scene / "sheets.gpkg", "name")
    geom = next(g for g, name in items if name == args.sheet)
    xs, ys = zip(*geom["coordinates"][0])
    with rasterio.open(scene / "sar.tif") as src:
        window = from_bounds(min(xs), min(ys), max(xs), max(ys), src.transform).round_offsets().round_lengths()
        size = (src.height, src.width)
    labels = crop(scene / "labels.tif", window, tmp / "labels_sheet.tif")
    rows, ref = [], None
    for name, runtime, overlap, engine in (
            ("torch", "torch", 128, None), ("torch, overlap 64", "torch", 64, None),
            ("onnx (ONNX Runtime)", "onnx", 128, "onnxruntime"), ("onnx (OpenVINO)", "onnx", 128, "openvino"),
            ("int8 (ONNX Runtime)", "int8", 128, "onnxruntime"), ("int8 (OpenVINO)", "int8", 128, "openvino"),
            ("int8, overlap 64 (ONNX Runtime)", "int8", 64, "onnxruntime"),
            ("int8, overlap 64 (OpenVINO)", "int8", 64, "openvino")):
        if engine:
            os.environ["STARS_ONNX_ENGINE"] = engine
        out = tmp / f"scene_{len(rows)}.tif"
        segment(model, scene / "sar.tif", tmp / "warm.tif", SegmentConfig(tile_size=512, overlap=overlap,
                                                                          device="cpu", runtime=runtime))
        took = segment(model, scene / "sar.tif", out, SegmentConfig(tile_size=512, overlap=overlap, device="cpu",
                                                                    runtime=runtime)).seconds  # exported already
        report = evaluate(crop(out, window, tmp / f"sheet_{len(rows)}.tif"), labels, ignore_values=[0])
        m = read(out)
        ref = m if ref is None else ref
        r0, c0 = int(window.row_off), int(window.col_off)
        sl = (slice(r0, r0 + int(window.height)), slice(c0, c0 + int(window.width)))
        seams = seam_mask(*size, overlap)[sl]
        same = (m == ref)[sl]
        rows.append((name, report["miou"], same.mean(), same[seams].mean(), same[~seams].mean(), took))
    print(f"\n| demo model, demo scene at 512-px tiles, scored on held-out sheet {args.sheet} | SAR-only mIoU | pixels "
          f"equal to torch (overlap 128) | within 16 px of a seam | elsewhere | seconds (1024 x 1024) |"
          f"\n|---|---:|---:|---:|---:|---:|")
    for name, miou, same, seam, rest, took in rows:
        print(f"| {name} | {miou:.4f} | {same:.4f} | {seam:.4f} | {rest:.4f} | {took:.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--r50-steps", type=int, default=60)
    ap.add_argument("--backbone", default="resnet50", help="of the model trained for part 1 (resnet18/34: lighter)")
    ap.add_argument("--r50", metavar="PATH", help="the part-1 model (ResNet-50 unless --backbone): used if it exists, "
                                                  "else trained and saved there")
    ap.add_argument("--model", default=str(ROOT / "demo_out" / "model.stars"))
    ap.add_argument("--scene", default=str(ROOT / "demo_out" / "scene"))
    ap.add_argument("--sheet", default="B2")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    import onnxruntime
    import torch

    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(f"# scene_speed: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {platform.machine()}, "
          f"{nproc} cores; IW scene = 25,000 x 17,000 px = {IW_PIXELS / (args.size * args.size):.1f}x the raster")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_speed:
            speed(args, tmp)
        accuracy(args, tmp)


if __name__ == "__main__":
    main()
