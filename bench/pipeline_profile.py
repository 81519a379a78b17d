"""Where the time of one `stars segment` goes on the default CPU path (issue 27): the one-time set-up
(loading the model file, hashing it, compiling the cached export), then per tile the network, the
reading (in the reader thread, overlapped with the network), the blending and the writing of
finished rows, and the closing step (colour table, overviews). The sum of the tile loop's parts
against its wall time shows what overlaps and what waits.

The raster repeats the demo SAR (a VRT, as in scene_speed.py, or `--geotiff`: the same pixels
written as a tiled, deflate-compressed GeoTIFF, what users have). The model is a ResNet-50 STARS
(`--r50`, as scene_speed.py saves it; trained `--r50-steps` on the demo scene when missing); the
export is made by a first run on the demo SAR and not timed. Prints, never asserts. Usage:
    python bench/pipeline_profile.py [--size 4096] [--geotiff] [--r50 PATH] [--overlap N] [--repeats 1]
"""
from __future__ import annotations

import argparse
import functools
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from stars_core import threads  # noqa: E402

threads.prepare_environment()

TIMES: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            TIMES[name] += time.perf_counter() - t0
            CALLS[name] += 1
    return wrapper


def instrument() -> None:
    """Wrap the pipeline's steps with timers (bench only: the product is not touched)."""
    from stars_core.engines import auto, onnx_model
    from stars_core.segmentation import infer
    from stars_core import tiling

    infer.open_runner = timed("set-up: open the model file", infer.open_runner)
    auto.fast_runner = timed("set-up: hash, open and compile the export", auto.fast_runner)
    infer._predict = timed("tile loop (wall)", infer._predict)
    infer._finish = timed("finish: colour table, overviews", infer._finish)
    infer._Inputs.read = timed("  read + normalise + pad (reader thread)", infer._Inputs.read)
    onnx_model.OnnxModel.probabilities = timed("  network", onnx_model.OnnxModel.probabilities)
    tiling.BlendRows.add = timed("  blend a tile", tiling.BlendRows.add)
    infer._Writers.write = timed("  write finished rows (argmax, compress)", infer._Writers.write)
    infer._stack = timed("  stack the batch", infer._stack)


def geotiff_copy(vrt: Path, out: Path) -> Path:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(vrt) as src:
        profile = dict(src.profile, driver="GTiff", tiled=True, blockxsize=256, blockysize=256, compress="deflate",
                       predictor=3 if src.dtypes[0].startswith("float") else 1)
        with rasterio.open(out, "w", **profile) as dst:
            dst.descriptions = src.descriptions
            for row in range(0, src.height, 1024):
                w = Window(0, row, src.width, min(1024, src.height - row))
                dst.write(src.read(window=w), window=w)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--geotiff", action="store_true")
    ap.add_argument("--r50", metavar="PATH")
    ap.add_argument("--r50-steps", type=int, default=60)
    ap.add_argument("--overlap", type=int, default=None)
    ap.add_argument("--runtime", default="auto")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--hints", nargs="+", default=["LATENCY"], choices=["THROUGHPUT", "LATENCY"],
                    help="OpenVINO's performance hints, alternated within each repeat (LATENCY: the toolbox's)")
    args = ap.parse_args()

    from scene_speed import train_r50
    from segment_memory import repeat_vrt

    from stars_core.config import SegmentConfig
    from stars_core.demo_scene import make_demo_scene
    from stars_core.segmentation.infer import segment

    threads.configure("auto")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scene = make_demo_scene(tmp / "scene", size=1024, seed=0)
        model = tmp / "r50.stars"
        if args.r50 and Path(args.r50).is_file():
            import shutil

            shutil.copy(args.r50, model)
        else:
            train_r50(scene, model, args.r50_steps)
            if args.r50:
                import shutil

                shutil.copy(model, args.r50)
        src = repeat_vrt(scene["sar"], args.size, tmp / f"sar_{args.size}.vrt")
        if args.geotiff:
            src = geotiff_copy(src, tmp / f"sar_{args.size}.tif")
        cfg = SegmentConfig(tile_size=512, overlap=args.overlap, device="cpu", runtime=args.runtime)
        first = segment(model, scene["sar"], tmp / "warm.tif", cfg)  # the export, made once, not timed
        print(f"# pipeline_profile: {args.size} x {args.size} {'GeoTIFF' if args.geotiff else 'VRT'}, "
              f"{first.runtime_note}; {threads.describe()}, {platform.machine()}")
        instrument()
        from stars_core.engines import auto, onnx_model

        for rep, hint in ((rep, hint) for rep in range(args.repeats) for hint in args.hints):
            onnx_model.OPENVINO_HINT = hint
            auto._SESSIONS.clear()  # compiled again with this hint (timed in the set-up)
            TIMES.clear()
            CALLS.clear()
            t0 = time.perf_counter()
            r = segment(model, src, tmp / "map.tif", cfg)
            wall = time.perf_counter() - t0
            print(f"\nrun {rep + 1}, OpenVINO hint {hint}: {r.tiles} tiles, {wall:.1f} s in segment()\n\n"
                  f"| step | seconds | per tile, ms | calls |\n|---|---:|---:|---:|")
            for name, s in TIMES.items():
                print(f"| {name} | {s:.2f} | {1000 * s / r.tiles:.0f} | {CALLS[name]} |")
            loop = TIMES["tile loop (wall)"]
            main_thread = sum(v for k, v in TIMES.items() if k.startswith("  ") and "reader" not in k)
            print(f"| tile loop, not in a timed step | {loop - main_thread:.2f} | "
                  f"{1000 * (loop - main_thread) / r.tiles:.0f} | |")


if __name__ == "__main__":
    main()
