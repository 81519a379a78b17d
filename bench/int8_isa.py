"""The int8 map with and without VNNI: 8-bit against 7-bit weights (the export's `reduce_range`).

A CPU without VNNI (AVX2; AVX-512 before Cascade Lake; AMD before Zen 4) sums pairs of uint8 x int8
products in 16 bits, which saturate where both are large. This CPU runs OpenVINO's kernels either
way: natively, and as a CPU without VNNI runs them (oneDNN's ONEDNN_MAX_CPU_ISA=AVX2). Per model:
the map of eager PyTorch (the reference), then for 8- and 7-bit weights (the same calibration) the
int8 export's map natively and with AVX2 kernels, each scored on the held-out sheet (SAR-only mIoU)
and against PyTorch's map and each other (share of equal pixels of the whole scene). Each map in its
own process. Prints, never asserts. Usage:
    python bench/int8_isa.py demo_out/model.stars [student.stars ...] [--scene demo_out/scene --sheet B2]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from distill import score, sheet_window  # noqa: E402
from year_speed import isa_flags  # noqa: E402


def segment(model: Path, sar: Path, out: Path, isa: str = "", *extra: str) -> np.ndarray:
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    env.update({"PYTHONPATH": str(ROOT), "STARS_ONNX_ENGINE": "openvino", **({"ONEDNN_MAX_CPU_ISA": isa} if isa else {})})
    cmd = [sys.executable, "-m", "stars_core.cli", "segment", str(model), str(sar), str(out), *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr[-2000:])
    with rasterio.open(out) as ds:
        return ds.read(1)


def export(model: Path, onnx: Path, sar: Path, tile: int, bits: int) -> None:
    """The int8 export as `stars` makes it, with 8- or 7-bit weights."""
    import onnxruntime.quantization as quantization

    from stars_core.engines import onnx_export

    original = quantization.quantize_static

    def with_bits(*args, **kwargs):
        kwargs["reduce_range"] = bits == 7
        return original(*args, **kwargs)

    quantization.quantize_static = with_bits
    try:
        onnx_export.export_onnx(model, onnx, "m1", tile, int8=True, calibrate=sar, log=lambda m: None)
    finally:
        quantization.quantize_static = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--scene", type=Path, default=Path("demo_out/scene"))
    ap.add_argument("--sheet", default="B2")
    ap.add_argument("--tile", type=int, default=512)
    args = ap.parse_args()
    sar, window = args.scene / "sar.tif", sheet_window(args.scene, args.sheet)
    print(f"ISA: {', '.join(isa_flags())}")
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp_name:
        tmp = Path(tmp_name)
        labels = tmp / "labels_sheet.tif"
        from scene_speed import crop

        crop(args.scene / "labels.tif", window, labels)
        for model in args.models:
            reference = segment(model, sar, tmp / "torch.tif", "", "--runtime", "torch", "--tile-size", str(args.tile))
            miou = score(tmp / "torch.tif", labels, window, tmp, "torch")[0]
            print(f"\n{model.name}, {args.tile}-px tiles: PyTorch held-out mIoU {miou:.4f}\n")
            print("| weights | kernels | held-out mIoU | pixels equal to PyTorch's | equal to the other kernels' |")
            print("|---|---|---:|---:|---:|")
            for bits in (8, 7):
                onnx = tmp / f"{model.stem}_w{bits}.onnx"
                export(model, onnx, sar, args.tile, bits)
                maps = {isa: segment(onnx, sar, tmp / f"w{bits}{isa}.tif", isa) for isa in ("", "AVX2")}
                same = np.mean(maps[""] == maps["AVX2"])
                for isa, m in maps.items():
                    miou = score(tmp / f"w{bits}{isa}.tif", labels, window, tmp, f"w{bits}{isa}")[0]
                    print(f"| {bits}-bit | {isa or 'native'} | {miou:.4f} | {np.mean(m == reference):.4f} | {same:.5f} |")


if __name__ == "__main__":
    main()
