"""Peak memory (RSS) of `stars segment` against raster size: generated SAR rasters of 4k, 16k and
32k pixels square, each segmented in its own process.

The big rasters cost no disk: a VRT repeats one generated 1024 x 1024 SAR tile. Prints, never
asserts (goal: flat, under 3 GB at 32k). Usage:
    python bench/segment_memory.py [--sizes 4096 16384 32768] [--backbone resnet18] [--width 16]
                                   [--tile 512] [--batch 4|0] [--device cpu] [--runtime torch|auto|onnx|int8]
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from stars_core import threads  # first: the toolbox's thread policy, set before torch loads

threads.prepare_environment()
import rasterio


def repeat_vrt(tile_path: Path, size: int, out: Path) -> Path:
    """A size x size VRT made of copies of one raster."""
    with rasterio.open(tile_path) as t:
        w, h, bands, res = t.width, t.height, t.count, t.res
        left, top = t.bounds.left, t.bounds.top
        crs, dtype, nodata = t.crs.to_wkt(), t.dtypes[0], t.nodata
        names = t.descriptions
    vtype = {"float32": "Float32", "uint16": "UInt16", "uint8": "Byte"}[dtype]
    parts = [f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">',
             f"<SRS>{crs.replace('&', '&amp;').replace('<', '&lt;')}</SRS>",
             f"<GeoTransform>{left}, {res[0]}, 0, {top}, 0, {-res[1]}</GeoTransform>"]
    for b in range(1, bands + 1):
        parts.append(f'<VRTRasterBand dataType="{vtype}" band="{b}"><Description>{names[b - 1] or ""}</Description>')
        if nodata is not None:
            parts.append(f"<NoDataValue>{nodata}</NoDataValue>")
        for r in range(0, size, h):
            for c in range(0, size, w):
                parts.append(
                    f'<SimpleSource><SourceFilename relativeToVRT="0">{tile_path}</SourceFilename>'
                    f"<SourceBand>{b}</SourceBand><SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{min(w, size - c)}\" "
                    f'ySize="{min(h, size - r)}"/><DstRect xOff="{c}" yOff="{r}" xSize="{min(w, size - c)}" '
                    f'ySize="{min(h, size - r)}"/></SimpleSource>')
        parts.append("</VRTRasterBand>")
    parts.append("</VRTDataset>")
    out.write_text("\n".join(parts))
    return out


CHILD = """
import json, resource, sys, time
from stars_core import threads
threads.prepare_environment()
from stars_core.config import SegmentConfig
from stars_core.segmentation.infer import segment

threads.configure("auto")
model, src, out, tile, batch, device, runtime = sys.argv[1:8]
r = segment(model, src, out, SegmentConfig(tile_size=int(tile), batch_size=int(batch) or None, device=device,
                                          runtime=runtime))
print(json.dumps({"seconds": r.seconds, "tiles": r.tiles,
                  "peak_rss_mb": int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384, 32768])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4, help="tiles per run (0: the runtime's own choice)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runtime", default="torch", choices=["auto", "torch", "onnx", "int8"],
                    help="what runs the model (auto: the int8 export on a CPU, exported on the first raster)")
    args = ap.parse_args()
    from stars_core.config import DataConfig, StarsConfig, TrainConfig
    from stars_core.training.data import SceneSpec
    from stars_core.demo_scene import make_demo_scene
    from stars_core.training.train import train

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p = make_demo_scene(tmp / "scene", size=1024, seed=0)
        spec = [SceneSpec(str(p["sar"]), str(p["optical"]), str(p["labels"]))]
        cfg = TrainConfig(steps=1, batch_size=2, warmup_steps=1, num_workers=0, device=args.device)
        model = train(spec, tmp / "m.stars", StarsConfig(backbone=args.backbone, encoder_width=args.width),
                      train_cfg=cfg, data_cfg=DataConfig(chip_size=128, val_fraction=0, class_table=str(p["classes"])),
                           log=lambda *_: None).path
        print(f"# segmentation memory, {args.backbone} width {args.width}, tile {args.tile}, batch {args.batch}, "
              f"device {args.device}, runtime {args.runtime}, {platform.machine()}")
        print("\n| raster | megapixels | tiles | seconds | Mpx/s | peak RSS (MB) |\n|---|---|---|---|---|---|")
        for size in args.sizes:
            src = repeat_vrt(p["sar"], size, tmp / f"sar_{size}.vrt")
            out = tmp / f"map_{size}.tif"
            proc = subprocess.run([sys.executable, "-c", CHILD, str(model), str(src), str(out), str(args.tile),
                                   str(args.batch), args.device, args.runtime], capture_output=True, text=True)
            if proc.returncode:
                print(f"| {size} | failed: {proc.stderr.strip().splitlines()[-1]} |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            mpx = size * size / 1e6
            print(f"| {size} x {size} | {mpx:.0f} | {r['tiles']} | {r['seconds']:.0f} | {mpx / r['seconds']:.2f} | "
                  f"{r['peak_rss_mb']:.0f} |", flush=True)
            out.unlink()


if __name__ == "__main__":
    main()
