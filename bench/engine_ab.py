"""The bare network in ONNX Runtime against OpenVINO, alternating in one process: seconds per tile of an
exported graph (no reading, blending or writing). Prints, never asserts. Usage:
    python bench/engine_ab.py MODEL.stars CALIBRATION_RASTER [--tile 512] [--rounds 3] [--tiles 10]
(exports the m1 branch to int8 first, calibrated on the raster).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from stars_core import threads

threads.prepare_environment()
from stars_core.onnx_export import export_onnx  # noqa: E402
from stars_core.onnx_model import OnnxModel  # noqa: E402

threads.configure("auto")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("raster")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tiles", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(args.model, Path(tmp) / "m1_int8.onnx", "m1", args.tile, int8=True, calibrate=args.raster,
                           log=lambda m: None)
        runners = {e: OnnxModel(path, "cpu", engine=e) for e in ("onnxruntime", "openvino")}
        x = (np.random.default_rng(0).normal(-14, 4, (1, 2, args.tile, args.tile)) / 255).astype(np.float32)
        for r in runners.values():
            for _ in range(2):
                r.session.run(None, {r.input_name: x})
        for k in range(args.rounds):
            for engine, r in runners.items():
                t = time.perf_counter()
                for _ in range(args.tiles):
                    r.session.run(None, {r.input_name: x})
                print(f"round {k}: {engine} {(time.perf_counter() - t) / args.tiles:.3f} s per tile", flush=True)


if __name__ == "__main__":
    main()
