"""One map whatever the threads (issue 33): the int8 export of a STARS model run by OpenVINO on 1 and
on 2 threads, with OpenVINO's default inference precision (bf16 for the float layers between the int8
ones on CPUs with AVX-512 BF16 or AMX) and with f32 (what the toolbox asks for). Prints, per precision,
how many class-map pixels and probability values differ between the thread counts, and the seconds
per 512-pixel tile on 2 threads (alternating, in one process). Never asserts. Usage:
    python bench/precision_threads.py [--model R50.stars] [--steps 60] [--tiles 8] [--rounds 3]
(without --model, a ResNet-50 STARS model is trained --steps steps on the demo scene first).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from stars_core import threads

threads.prepare_environment()
import rasterio  # noqa: E402

from stars_core.engines.onnx_export import export_onnx  # noqa: E402


def compiled(path: Path, nthreads: int, precision: str | None):
    import openvino

    core = openvino.Core()
    model = core.read_model(str(path))
    shape = model.inputs[0].get_partial_shape()
    model.reshape({model.inputs[0]: openvino.PartialShape([1, *list(shape)[1:]])})
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": nthreads}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    c = core.compile_model(model, "CPU", config)
    return c, str(c.get_property("INFERENCE_PRECISION_HINT"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--tiles", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import os
    import platform

    flags = sorted({f for f in open("/proc/cpuinfo").read().split() if f in ("avx2", "avx512_vnni", "avx512_bf16",
                                                                            "amx_bf16", "amx_int8")})
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, flags {' '.join(flags)}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from scene_speed import train_r50

        from stars_core.demo_scene import make_demo_scene

        scene = make_demo_scene(tmp / "scene", size=1024, seed=0)
        model = Path(args.model) if args.model else train_r50(scene, tmp / "r50.stars", args.steps)
        graph = export_onnx(model, tmp / "m1-int8.onnx", "m1", tile_size=512, int8=True, calibrate=scene["sar"],
                            log=lambda *_: None)
        with rasterio.open(scene["sar"]) as ds:
            a = ds.read().astype(np.float32) / 255.0
        rng = np.random.default_rng(0)
        tiles = [a[:, r:r + 512, c:c + 512][None] for r, c in rng.integers(0, 512, (args.tiles, 2))]
        times: dict[str, list[float]] = {}
        for precision in (None, "f32"):
            outs = {}
            for n in (1, 2):
                c, used = compiled(graph, n, precision)
                outs[n] = np.concatenate([c({0: t})[0] for t in tiles])
            name = f"{'default' if precision is None else precision} ({used})"
            moved = int((outs[1].argmax(1) != outs[2].argmax(1)).sum())
            values = int((outs[1] != outs[2]).sum())
            print(f"{name:<22} 1 vs 2 threads: {moved:,} of {outs[1][:, 0].size:,} class pixels differ, "
                  f"{values:,} probability values differ (max {float(np.abs(outs[1] - outs[2]).max()):.4f})")
            times[name] = []
        engines = {name: compiled(graph, 2, p)[0] for name, p in zip(times, (None, "f32"))}
        for _ in range(args.rounds):
            for name, c in engines.items():
                c({0: tiles[0]})
                t = time.perf_counter()
                for tile in tiles:
                    c({0: tile})
                times[name].append((time.perf_counter() - t) / len(tiles))
        for name, ts in times.items():
            print(f"{name:<22} 2 threads: {min(ts):.3f}-{max(ts):.3f} s per tile")
        base, f32 = (min(ts) for ts in times.values())
        print(f"f32 / default time: {f32 / base:.2f}")


if __name__ == "__main__":
    main()
