"""Scale-out measurements: `stars train` start-up (time to the end of a 1-step run, peak memory)
against the number of scenes, and map-sheet throughput with 1 and 2 processes (torchrun).

Every run is a fresh process (`stars` command line); memory is the child's peak RSS. Prints,
never asserts. Usage: python bench/scale.py [--scenes 10 100 500] [--sheet-size 1024] [--grid 4x4]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stars_core.demo_scene import cut_scene_table, make_demo_scene

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "stars_core.cli"]


def timed(cmd: list[str], **kw) -> tuple[float, float]:
    """(seconds, peak RSS of the child in MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), **kw)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, nargs="+", default=[10, 100, 500])
    ap.add_argument("--sheet-scene", type=int, default=2048, help="demo scene side for the sheet runs")
    ap.add_argument("--grid", default="4x4")
    args = ap.parse_args()
    print(f"# scale-out: {os.cpu_count()} cores, {platform.machine()}, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows, cols = (int(v) for v in args.grid.split("x"))
        scene = make_demo_scene(tmp / "scene", size=args.sheet_scene, seed=0, sheets=(rows, cols))
        print("\n| scenes | seconds (prepare + 1 step) | peak RSS (MB) |\n|---|---|---|")
        for n in args.scenes:
            table = cut_scene_table(scene, tmp / f"s{n}", n)
            seconds, mb = timed([*CLI, "train", "--scenes", str(table), "--class-table", str(scene["classes"]),
                                 "--ignore-value", "0", "--out", str(tmp / f"m{n}.stars"), "--backbone", "resnet18",
                                 "--encoder-width", "16", "--steps", "1", "--batch-size", "2", "--chip-size", "32",
                                 "--workers", "0", "--device", "cpu", "--val-fraction", "0"])
            print(f"| {n} | {seconds:.1f} | {mb:.0f} |", flush=True)
        model = tmp / "sheets.stars"
        subprocess.run([*CLI, "train", "--m1", str(scene["sar"]), "--m2", str(scene["optical"]), "--labels",
                        str(scene["labels"]), "--class-table", str(scene["classes"]), "--out", str(model),
                        "--backbone", "resnet18", "--encoder-width", "32", "--steps", "1", "--batch-size", "2",
                        "--chip-size", "128", "--workers", "0", "--device", "cpu"], check=True, capture_output=True)
        mpx = args.sheet_scene ** 2 / 1e6
        print(f"\n| processes | seconds for {rows * cols} sheets ({mpx:.1f} Mpx) | Mpx/s |\n|---|---|---|")
        for procs in (1, 2):
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_port",
                   str(29650 + procs), "-m", "stars_core.cli", "segment-sheets", str(model), str(scene["sheets"]),
                   str(scene["sar"]), str(tmp / f"out{procs}"), "--name-field", "name", "--device", "cpu"]
            seconds, _ = timed(cmd)
            print(f"| {procs} | {seconds:.1f} | {mpx / seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
