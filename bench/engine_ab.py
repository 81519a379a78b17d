"""The bare network of an int8 export, engine against engine, alternating in one process: seconds per
tile (no reading, blending or writing). Engines: ONNX Runtime; ONNX Runtime with IO binding (the
input bound in place, the output written into one buffer allocated once); OpenVINO in latency mode (one
request at a time on all threads, the graph reshaped to one static tile: what the toolbox runs), and
the same on the graph's free batch (what it ran before); OpenVINO in throughput mode (`--streams`
streams, as many requests in flight, each on a share of the threads). Prints, never asserts. Usage:
    python bench/engine_ab.py MODEL.stars CALIBRATION_RASTER [--tile 512] [--rounds 3] [--tiles 10] [--streams 2]
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
from stars_core.engines.onnx_export import export_onnx  # noqa: E402
from stars_core.engines.onnx_model import OnnxModel  # noqa: E402

threads.configure("auto")


def throughput_runner(path: Path, streams: int):
    """Runs a list of tiles through `streams` parallel requests of one compiled model."""
    import openvino

    core = openvino.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                  {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": str(streams)})
    queue = openvino.AsyncInferQueue(compiled, streams)
    out = compiled.output(0)
    results = {}
    queue.set_callback(lambda request, i: results.__setitem__(i, request.get_tensor(out).data.copy()))

    def run(tiles: list[np.ndarray]) -> list[np.ndarray]:
        results.clear()
        for i, x in enumerate(tiles):
            queue.start_async({0: x}, i)
        queue.wait_all()
        return [results[i] for i in range(len(tiles))]

    return run, compiled.get_property("NUM_STREAMS"), compiled.get_property("INFERENCE_NUM_THREADS")


def io_binding_runner(runner: OnnxModel, tile: int):
    """ONNX Runtime with the output bound to one preallocated buffer, the input bound in place."""
    import onnxruntime as ort

    session = runner.session
    out_name = session.get_outputs()[0].name
    classes = len(runner.classes)
    buffer = ort.OrtValue.ortvalue_from_numpy(np.empty((1, classes, tile, tile), np.float32))
    binding = session.io_binding()
    binding.bind_ortvalue_output(out_name, buffer)

    def run(tiles: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for x in tiles:
            binding.bind_cpu_input(runner.input_name, x)
            session.run_with_iobinding(binding)
            out.append(buffer.numpy().copy())
        return out

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("raster")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tiles", type=int, default=10)
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--fp32", action="store_true", help="also the fp32 export in both engines (CPUs without VNNI)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(args.model, Path(tmp) / "m1_int8.onnx", "m1", args.tile, int8=True, calibrate=args.raster,
                           log=lambda m: None)
        runners = {e: OnnxModel(path, "cpu", engine=e) for e in ("onnxruntime", "openvino")}
        rng = np.random.default_rng(0)
        tiles = [(rng.normal(-14, 4, (1, 2, args.tile, args.tile)) / 255).astype(np.float32) for _ in range(args.tiles)]
        calls = {e: (lambda xs, r=r: [r.session.run(None, {r.input_name: x})[0] for x in xs]) for e, r in runners.items()}
        calls["onnxruntime io-binding"] = io_binding_runner(runners["onnxruntime"], args.tile)
        import openvino

        core = openvino.Core()
        free = core.compile_model(core.read_model(str(path)), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        calls["openvino, free batch (before b4c2d6e)"] = lambda xs, c=free: [c(x)[c.output(0)] for x in xs]
        run, streams, nthreads = throughput_runner(path, args.streams)
        calls[f"openvino throughput ({streams} streams, {nthreads} threads)"] = run
        if args.fp32:
            fp32 = export_onnx(args.model, Path(tmp) / "m1.onnx", "m1", args.tile, log=lambda m: None)
            for e in ("onnxruntime", "openvino"):
                r = OnnxModel(fp32, "cpu", engine=e)
                calls[f"{e} fp32"] = lambda xs, r=r: [r.session.run(None, {r.input_name: x})[0] for x in xs]
        first = {}
        for name, call in calls.items():  # warm up; the same answers from every engine's mode
            first[name] = call(tiles[:2])[0]
        ref = first["openvino"].argmax(1)
        for name, out in first.items():
            print(f"{name}: pixels equal to OpenVINO latency mode on a tile {(out.argmax(1) == ref).mean():.4f}")
        for k in range(args.rounds):
            for name, call in calls.items():
                t = time.perf_counter()
                call(tiles)
                print(f"round {k}: {name} {(time.perf_counter() - t) / args.tiles:.3f} s per tile", flush=True)


if __name__ == "__main__":
    main()
