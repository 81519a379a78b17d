"""A year of SAR over a scene (issue 45): N dates of SIZE x SIZE with a given model, the temporal filter
and the change map, each step timed in its own process, extrapolated to a Sentinel-1 IW scene and set
against the int8 arithmetic floor.

Steps (each `stars ...` under /usr/bin/time: wall seconds and peak resident memory):
  export        the first `stars segment` of one date: makes the runtime's export (int8: calibration);
                a user's first run, once per model file, not counted in the year;
  plain         `stars segment-series` over the dates (maps only);
  with probs    `stars segment-series --probabilities` (the maps and uint8 probabilities the filter reads);
  filter        `stars filter-series` (Viterbi over every pixel's dates);
  change        `stars change --series` (first date to last, the filtered maps).
The filtered/plain ratio per date is (with probs + filter) / plain (goal: at most 1.2).

The floor: the model's multiply-accumulates per tile (torch's FlopCounterMode on the SAR-only forward,
flops / 2) x the tiles of an IW scene (`tiling.TileGrid`, the default overlap), against the CPU's
int8 rate measured on ONNX Runtime's MatMulInteger (uint8 x int8 -> int32, N x N x N; the kernel
family of the int8 export's QLinearConv/QDQ convolutions: MLAS's u8s8 GEMM, VNNI/AMX where the CPU has
them). Convolutions rarely reach a large GEMM's rate, so the floor is a bound, not a forecast.

Inputs: the demo series (`make_demo_series`, 1024 x 1024 a date) repeated by a VRT to SIZE (SIZE
above 1024) or cut by it; the model: --model (e.g. the distilled student of `stars distill`), else
a tiny ResNet-18 STARS model trained --steps steps on the demo scene (speed only: its maps mean
nothing). Prints, never asserts; the machine must be quiet for its numbers to mean anything.
Usage:
    python bench/year_speed.py --model student.stars [--dates 30] [--size 4096] [--tile-size 512]
    python bench/year_speed.py --size 512 --dates 3          # a check that it runs (minutes)
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from series_speed import series_inputs, timed  # noqa: E402

IW = (17_000, 25_000)  # a Sentinel-1 IW scene at 10 m, rows x columns
ISA = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")


def isa_flags() -> list[str]:
    """The CPU's vector and matrix extensions that the int8 and bf16 paths use (Linux /proc/cpuinfo)."""
    try:
        flags = set(open("/proc/cpuinfo").read().split())
    except OSError:
        return ["unknown (no /proc/cpuinfo)"]
    return [f for f in ISA if f in flags] or ["none of " + ", ".join(ISA)]


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def int8_macs_per_second(n: int = 4096, repeats: int = 3) -> float:
    """ONNX Runtime's MatMulInteger (uint8 A (n, n) x int8 B (n, n) -> int32) in MACs per second,
    on as many threads as ONNX Runtime takes by default (the cores), best of `repeats`."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    b = np.random.default_rng(0).integers(-127, 128, (n, n), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "int8_gemm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])],
        [onnx.numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    a = np.random.default_rng(1).integers(0, 256, (n, n), dtype=np.uint8)
    session.run(None, {"A": a})  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"A": a})
        best = min(best, time.perf_counter() - start)
    return n**3 / best


def macs_per_tile(model: Path, tile: int) -> int:
    """Multiply-accumulates of one SAR-only forward of a `tile` x `tile` tile (flops / 2)."""
    import torch

    from model_speed import count_flops
    from stars_core.checkpoint import load_model

    loaded = load_model(model, "cpu")
    x = torch.zeros(1, len(loaded.stats[0].names), tile, tile)
    with torch.inference_mode():
        return count_flops(lambda: loaded.model(x)) // 2


def tiles_of(height: int, width: int, tile: int) -> int:
    from stars_core.config import default_overlap
    from stars_core.tiling import TileGrid

    return len(list(TileGrid.build(height, width, tile, default_overlap(tile))))


def tiny_model(tmp: Path, steps: int) -> Path:
    """A small ResNet-18 STARS model (encoder width 16) trained `steps` CPU steps on the demo scene."""
    from stars_core.config import DataConfig, StarsConfig, TrainConfig
    from stars_core.demo_scene import make_demo_scene
    from stars_core.training.data import SceneSpec
    from stars_core.training.train import train

    scene = make_demo_scene(tmp / "scene", size=256, seed=0)
    spec = [SceneSpec(str(scene["sar"]), str(scene["optical"]), str(scene["labels"]))]
    cfg = StarsConfig(backbone="resnet18", encoder_width=16, pyramid_channels=32, segmentation_channels=32)
    return train(spec, tmp / "tiny.stars", cfg,
                 train_cfg=TrainConfig.for_steps(steps, batch_size=2, lr=1e-3, num_workers=0, device="cpu"),
                 data_cfg=DataConfig(chip_size=128, class_table=str(scene["classes"]), ignore_values=(0,)),
                 log=lambda *_: None).path


def run_steps(model: Path, table: Path, tmp: Path, tile: int, runtime: str, plain: bool) -> dict[str, dict]:
    """Each step of the year in its own process (see the module docstring)."""
    first = next(csv.DictReader(open(table)))["path"]
    eng = ["--tile-size", str(tile), "--runtime", runtime]
    steps = {"export": timed(["segment", str(model), first, str(tmp / "export.tif"), *eng], "export")}
    if plain:
        steps["plain"] = timed(["segment-series", str(model), str(tmp / "plain"), "--dates", str(table), *eng],
                               "plain")
    steps["with probs"] = timed(["segment-series", str(model), str(tmp / "year"), "--dates", str(table), *eng,
                                 "--probabilities"], "with probs")
    steps["filter"] = timed(["filter-series", str(tmp / "year")], "filter")
    steps["change"] = timed(["change", str(tmp / "change.tif"), "--series", str(tmp / "year")], "change")
    return steps


def report(steps: dict[str, dict], args, model: Path, macs: int, rate: float) -> None:
    size_px, iw_px = args.size**2, IW[0] * IW[1]
    scale = iw_px / size_px  # seconds per pixel measured here, applied to an IW scene
    year = 30 / args.dates  # the year: 30 dates
    runtime_line = next((line for s in steps.values() for line in s["stdout"].splitlines()
                         if line.startswith("runtime")), "")
    print(f"\n{platform.node()}, {cpu_name()}, {os.cpu_count()} cores, ISA: {', '.join(isa_flags())}")
    print(f"model {model.name}, {args.dates} dates of {args.size} x {args.size}, {args.tile_size}-pixel tiles, "
          f"--runtime {args.runtime}; {runtime_line[:120]}")
    print("\n| step | seconds here | per date (s) | IW scene, 30 dates (min) | peak memory (GB) |")
    print("|---|---:|---:|---:|---:|")
    total = 0.0
    for name, s in steps.items():
        per_date = name in ("plain", "with probs", "filter")
        iw_min = s["seconds"] * scale * (year if per_date else 1) / 60
        if name not in ("export", "plain"):
            total += iw_min
        shown = f"{s['seconds'] / 60:.1f} (once a model, not scaled)" if name == "export" else f"{iw_min:.1f}"
        each = f"{s['seconds'] / args.dates:.2f}" if per_date else "-"
        print(f"| {name} | {s['seconds']:.1f} | {each} | {shown} | {s['peak_gb']:.2f} |")
    if args.size < 4096:
        print(f"(at {args.size} x {args.size} a process's start and model load dominate: the IW column is far too "
              f"high; measure at 4096)")
    iw_tiles = tiles_of(*IW, args.tile_size)
    floor_min = macs * iw_tiles * 30 / rate / 60
    seg_min = steps["with probs"]["seconds"] * scale * year / 60
    print(f"\nyear (30 dates, IW scene, with probabilities, filter and change): {total:.1f} min (goal: 30)")
    if "plain" in steps:
        ratio = (steps["with probs"]["seconds"] + steps["filter"]["seconds"]) / steps["plain"]["seconds"]
        print(f"filtered / plain series per date: {ratio:.2f}x (goal: at most 1.2)")
    print(f"floor: {macs / 1e9:.2f} GMAC per {args.tile_size}-px tile x {iw_tiles} tiles per IW scene = "
          f"{macs * iw_tiles / 1e12:.2f} TMAC a date, at {rate / 1e9:.0f} GMAC/s (ONNX Runtime MatMulInteger "
          f"u8 x s8, {args.gemm} x {args.gemm} x {args.gemm}) = {floor_min:.1f} min for 30 dates")
    print(f"share of the floor reached: segmentation {floor_min / max(seg_min, 1e-9):.1%}, the whole year "
          f"{floor_min / max(total, 1e-9):.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, help="model file (default: a tiny model trained --steps steps)")
    ap.add_argument("--dates", type=int, default=30)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--tile-size", type=int, default=512)
    ap.add_argument("--runtime", default="auto", help="as `stars segment --runtime` (default auto: int8 on a CPU)")
    ap.add_argument("--steps", type=int, default=2, help="training steps of the tiny model")
    ap.add_argument("--gemm", type=int, default=4096, help="side of the int8 matrix product (default 4096)")
    ap.add_argument("--no-plain", action="store_true", help="skip the plain series (no filtered/plain ratio)")
    args = ap.parse_args()
    print(f"ISA: {', '.join(isa_flags())}", flush=True)
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):  # OpenVINO's kernels as a CPU without (say) VNNI runs them
        print(f"ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']}: OpenVINO runs that ISA's kernels; the "
              f"floor's int8 rate (ONNX Runtime) does not follow it", flush=True)
    rate = int8_macs_per_second(args.gemm)
    print(f"int8 rate: {rate / 1e9:.0f} GMAC/s (ONNX Runtime MatMulInteger, {args.gemm}^3)", flush=True)
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp_name:
        tmp = Path(tmp_name)
        model = args.model.resolve() if args.model else tiny_model(tmp, args.steps)
        macs = macs_per_tile(model, args.tile_size)
        table = series_inputs(tmp, args.dates, args.size)
        steps = run_steps(model, table, tmp, args.tile_size, args.runtime, not args.no_plain)
    report(steps, args, model, macs, rate)


if __name__ == "__main__":
    main()
