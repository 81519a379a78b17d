"""Segmentation throughput: `stars segment` against the bare model forward on the same tiles in
the same run, and against a naive loop (one tile at a time, read, forward, write, no overlap).

Prints, never asserts (goal: segment / bare forward >= 0.9). Usage:
    python bench/segment_speed.py [--backbone resnet50] [--width 64] [--size 2048] [--tile 512]
                                  [--overlap 128] [--batch N] [--device auto] [--no-amp]
                                  [--read-threads N [N ...]]   (one `stars segment` row per reader count)
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from stars_core import threads  # first: the toolbox's thread policy, set before torch loads

threads.prepare_environment()
import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from stars_core.checkpoint import load_model
from stars_core.config import DataConfig, SegmentConfig, StarsConfig, TrainConfig
from stars_core.training.data import SceneSpec
from stars_core.demo_scene import make_demo_scene
from stars_core.segmentation.infer import segment
from stars_core.devices import autocast, resolve_device
from stars_core.tiling import TileGrid
from stars_core.training.train import train

threads.configure("auto")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def bare_forward(model, n_tiles: int, tile: int, bands: int, batch: int, device, amp: bool) -> float:
    """Seconds for the model alone on n_tiles inputs already on the device (no I/O, no blending)."""
    x = torch.randn(batch, bands, tile, tile, device=device)
    with autocast(device, amp):
        model(x)  # warm-up
    sync(device)
    t = time.perf_counter()
    for start in range(0, n_tiles, batch):
        with autocast(device, amp):
            model(x[: min(batch, n_tiles - start)])
    sync(device)
    return time.perf_counter() - t


@torch.inference_mode()
def naive_loop(loaded, path: str, out: str, tile: int, device, amp: bool) -> float:
    """One tile at a time, no overlap, no read-ahead: the loop a first script would write."""
    t = time.perf_counter()
    stats = loaded.stats[0]
    with rasterio.open(path) as src:
        profile = dict(src.profile, count=1, dtype="uint8", nodata=255)
        with rasterio.open(out, "w", **profile) as dst:
            for r in range(0, src.height, tile):
                for c in range(0, src.width, tile):
                    w = Window(c, r, min(tile, src.width - c), min(tile, src.height - r))
                    x = np.nan_to_num(stats.apply(src.read(window=w)))
                    x = np.pad(x, ((0, 0), (0, tile - x.shape[1]), (0, tile - x.shape[2])), mode="reflect")
                    with autocast(device, amp):
                        logits = loaded.model(torch.from_numpy(x)[None].to(device))
                    pred = logits.argmax(1)[0].cpu().numpy().astype(np.uint8)
                    dst.write(pred[: int(w.height), : int(w.width)], 1, window=w)
    sync(device)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--size", type=int, default=2048, help="raster side in pixels")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=128)
    ap.add_argument("--batch", type=int, help="tiles per forward pass (default: stars segment's, 1 on CPU, 4 on CUDA)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--read-threads", type=int, nargs="+", default=[None],
                    help="tile reader threads, one `stars segment` row per value (default: stars segment's)")
    ap.add_argument("--no-amp", action="store_true")
    args = ap.parse_args()
    device = resolve_device(args.device)
    amp = not args.no_amp
    batch = SegmentConfig(batch_size=args.batch).batch_for(device.type)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p = make_demo_scene(tmp / "scene", size=args.size, seed=0)
        spec = [SceneSpec(str(p["sar"]), str(p["optical"]), str(p["labels"]))]
        cfg = TrainConfig(steps=1, batch_size=2, warmup_steps=1, num_workers=0, device=args.device)
        model_path = train(spec, tmp / "m.stars", StarsConfig(backbone=args.backbone, encoder_width=args.width),
                           train_cfg=cfg, data_cfg=DataConfig(chip_size=128, val_fraction=0, class_table=str(p["classes"])),
                           log=lambda *_: None).path
        loaded = load_model(model_path, device)
        grid = TileGrid.build(args.size, args.size, args.tile, args.overlap)
        mpx = args.size ** 2 / 1e6
        def readers(n):
            return SegmentConfig(batch_size=batch, read_threads=n).readers_for(device.type, threads.available_cores())

        print(f"# segmentation speed, {args.backbone} width {args.width}, {args.size}^2 raster, tile {args.tile}, "
              f"overlap {args.overlap} ({len(grid)} tiles), batch {batch}, device {device}, "
              f"amp {amp and device.type == 'cuda'}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{platform.machine()}")
        segment(loaded, p["sar"], tmp / "warm.tif", SegmentConfig(tile_size=args.tile, overlap=0, batch_size=1,
                                                                   device=str(device), amp=amp))
        t_bare = bare_forward(loaded.model, len(grid), args.tile, 2, batch, device, amp)
        runs = [(readers(n), segment(loaded, p["sar"], tmp / f"seg{i}.tif",
                                     SegmentConfig(tile_size=args.tile, overlap=args.overlap, batch_size=batch,
                                                   device=str(device), amp=amp, read_threads=n)))
                for i, n in enumerate(args.read_threads)]
        t_naive = naive_loop(loaded, str(p["sar"]), str(tmp / "naive.tif"), args.tile, device, amp)
        naive_tiles = (-(-args.size // args.tile)) ** 2
        print("\n| run | tiles | seconds | Mpx/s | vs bare forward |\n|---|---|---|---|---|")
        print(f"| bare model forward, same tiles | {len(grid)} | {t_bare:.2f} | {mpx / t_bare:.3f} | 1.00 |")
        for n, r in runs:
            print(f"| stars segment, {n} reader thread{'s' if n > 1 else ''} | {r.tiles} | {r.seconds:.2f} | "
                  f"{mpx / r.seconds:.3f} | {t_bare / r.seconds:.2f} |")
        print(f"| naive loop, batch 1, no overlap | {naive_tiles} | {t_naive:.2f} | {mpx / t_naive:.3f} | "
              f"{t_bare / t_naive:.2f} |")
        r = min((r for _, r in runs), key=lambda r: r.seconds)
        print(f"\nstars segment (fastest row) / bare forward on the same tiles: {t_bare / r.seconds:.2f} (goal >= 0.9); "
              f"stars segment does {len(grid) / naive_tiles:.2f}x the naive loop's tiles (overlap) and runs at "
              f"{t_naive / r.seconds:.2f}x its wall-clock speed; seconds per tile: stars segment "
              f"{r.seconds / r.tiles:.2f}, naive loop {t_naive / naive_tiles:.2f}")

if __name__ == "__main__":
    main()
