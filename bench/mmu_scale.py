"""Time and peak memory (RSS) of cleaning a land-cover map to a minimum mapping unit (`stars clean`,
GDAL's sieve filter) against map size: 4k and 16k pixels square, each in its own process.

The map is the demo scene's label raster (1024 x 1024, six classes, with 2 % of its pixels flipped
to a random class, so there are many one-pixel patches to merge), repeated by a VRT to the size and
written once as a tiled GeoTIFF, as `stars segment` writes maps. Prints, never asserts (goal: memory
flat, under 3 GB at 16k). Usage:
    python bench/mmu_scale.py [--sizes 4096 16384] [--mmu 0.5ha]
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
from stars_core.product.mmu import clean_map
t = time.perf_counter()
r = clean_map(sys.argv[1], sys.argv[2], sys.argv[3], 8, log=lambda *_: None)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "pixels": r["pixels"], "changed": r["changed"]}))
"""


def noisy_labels(folder: Path) -> Path:
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
    return out


def tiled_map(tile: Path, size: int, out: Path) -> Path:
    from segment_memory import repeat_vrt
    from osgeo import gdal

    vrt = repeat_vrt(tile, size, out.with_suffix(".vrt"))
    gdal.Translate(str(out), str(vrt), creationOptions=["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument("--mmu", default="0.5ha")
    args = ap.parse_args()
    print(f"# mmu_scale: stars clean --mmu {args.mmu} (8-connected), {platform.machine()}, "
          f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores", flush=True)
    print("| map | unit (pixels) | pixels changed | seconds | Mpx/s | peak RSS MB |\n|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tile = noisy_labels(tmp)
        for size in args.sizes:
            t0 = time.perf_counter()
            src = tiled_map(tile, size, tmp / f"map{size}.tif")
            made = time.perf_counter() - t0
            res = subprocess.run([sys.executable, "-c", CHILD, str(src), str(tmp / f"clean{size}.tif"), args.mmu],
                                 capture_output=True, text=True, cwd=ROOT)
            if res.returncode != 0:
                print(f"| {size} x {size} | failed: {res.stderr.strip().splitlines()[-1]} |")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"| {size} x {size} | {r['pixels']} | {r['changed']:,} | {r['seconds']:.1f} | "
                  f"{size * size / 1e6 / r['seconds']:.1f} | {r['peak_mb']:.0f} |  (map written in {made:.0f} s)",
                  flush=True)
            src.unlink()
            (tmp / f"clean{size}.tif").unlink()


if __name__ == "__main__":
    main()
