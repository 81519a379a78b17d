"""Time and peak memory (RSS) of the land-cover product steps against map size (4k and 16k pixels
square), each step in its own process: cleaning to a minimum mapping unit (`stars clean`, GDAL's
sieve filter), polygonizing the cleaned map (`stars polygons`, GDAL's polygonize), and polygonizing
with simplified shared boundaries (`stars polygons --simplify`).

The map is the demo scene's label raster (1024 x 1024, six classes, with 2 % of its pixels flipped
to a random class, so there are many one-pixel patches to merge), repeated by a VRT to the size and
written once as a tiled GeoTIFF, as `stars segment` writes maps. Prints, never asserts (goal: memory
flat, under 3 GB at 16k). Usage:
    python bench/product_scale.py [--sizes 4096 16384] [--mmu 0.5ha] [--simplify 1px] [--steps clean polygons simplified]
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

CHILD = """
import json, resource, sys, time
from stars_core.classes import ClassTable
from stars_core.product.mmu import clean_map
from stars_core.product.polygons import polygonize
step, src, out, arg = sys.argv[1:5]
t = time.perf_counter()
if step == "clean":
    r = clean_map(src, out, arg, 8, log=lambda *_: None)
    what = f"{r['pixels']} px unit, {r['changed']:,} pixels changed"
else:
    r = polygonize(src, out, class_table=ClassTable.from_file(sys.argv[5]), simplify=None if arg == "-" else arg,
                   log=lambda *_: None)
    what = f"{r['polygons']:,} polygons" + (f", tolerance {r['simplified']:g} map units" if arg != "-" else "")
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024,
                  "what": what}))
"""


def noisy_labels(folder: Path) -> tuple[Path, Path]:
    from stars_core.demo_scene import make_demo_scene

    scene = make_demo_scene(folder / "scene", size=1024, seed=0)
    with rasterio.open(scene["labels"]) as src:
        data, profile, colors = src.read(1), src.profile, src.colormap(1)
    rng = np.random.default_rng(0)
    flip = (rng.random(data.shape) < 0.02) & (data != 0)
    data[flip] = rng.integers(1, 7, int(flip.sum()))
    out = folder / "noisy.tif"
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data, 1)
        dst.write_colormap(1, colors)
    return out, scene["classes"]


def tiled_map(tile: Path, size: int, out: Path) -> Path:
    from segment_memory import repeat_vrt
    from osgeo import gdal

    vrt = repeat_vrt(tile, size, out.with_suffix(".vrt"))
    gdal.Translate(str(out), str(vrt), creationOptions=["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"])
    return out


def run(step: str, src: Path, out: Path, arg: str, classes: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, step, str(src), str(out), arg, str(classes)],
                         capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        return {"failed": (res.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument("--mmu", default="0.5ha")
    ap.add_argument("--simplify", default="1px")
    ap.add_argument("--steps", nargs="+", default=["clean", "polygons", "simplified"],
                    choices=["clean", "polygons", "simplified"])
    args = ap.parse_args()
    print(f"# product_scale: --mmu {args.mmu} (8-connected), polygons of the cleaned map, --simplify {args.simplify}; "
          f"{platform.machine()}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores",
          flush=True)
    print("| map | step | result | seconds | Mpx/s | peak RSS MB |\n|---|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tile, classes = noisy_labels(tmp)
        for size in args.sizes:
            t0 = time.perf_counter()
            src = tiled_map(tile, size, tmp / f"map{size}.tif")
            made = time.perf_counter() - t0
            clean = tmp / f"clean{size}.tif"
            steps = [("clean", src, clean, args.mmu), ("polygons", clean, tmp / f"p{size}.gpkg", "-"),
                     ("simplified", clean, tmp / f"s{size}.gpkg", args.simplify)]
            if "clean" not in args.steps:
                run("clean", src, clean, args.mmu, classes)  # the polygons are of the cleaned map
            for step, a, b, arg in steps:
                if step not in args.steps:
                    continue
                r = run(step if step == "clean" else "polygons", a, b, arg, classes)
                if "failed" in r:
                    print(f"| {size} x {size} | {step} | failed: {r['failed']} | | | |", flush=True)
                    continue
                print(f"| {size} x {size} | {step} | {r['what']} | {r['seconds']:.1f} | "
                      f"{size * size / 1e6 / r['seconds']:.1f} | {r['peak_mb']:.0f} |", flush=True)
            print(f"(the {size} map was written in {made:.0f} s)", flush=True)
            for f in tmp.glob(f"*{size}*"):
                f.unlink()


if __name__ == "__main__":
    main()
