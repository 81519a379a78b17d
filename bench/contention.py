"""Forward throughput beside other CPU work, with the toolbox's thread policy and with PyTorch's default.

For each model (the demo model: ResNet-18 width 32 STARS, batch 2, 128-pixel chips, paired forward;
ResNet-50 STARS SAR-only, one 512-pixel tile) and each policy ("default": PyTorch as installed;
"stars": stars_core.threads, the thread count adapted to the load; "bounded": the same with
GOMP_SPINCOUNT=10000), it measures iterations per
second alone, beside a second copy of itself (same policy) and beside a plain Python busy loop. Every
measurement is a fresh process. Prints a Markdown table and the ratios; never asserts.
Usage: python bench/contention.py [--seconds 20] [--models demo r50]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "demo": "demo model (ResNet-18 w32, batch 2, 128 px, SAR + optical)",
    "r50": "ResNet-50 STARS, SAR only, one 512-px tile",
}


POLICIES = {
    "default": "PyTorch as installed",
    "stars": "the toolbox's (stars_core.threads): thread count adapted to the load",
    "bounded": "the same, with OpenMP's spinning bounded (GOMP_SPINCOUNT=10000), rejected",
}


def worker(model: str, policy: str, seconds: float, warmup: float) -> None:
    """Runs in its own process: prints iterations per second over `seconds` after `warmup`."""
    from stars_core import threads

    threads.prepare_environment()
    if policy == "bounded":
        os.environ["GOMP_SPINCOUNT"] = "10000"  # read once, when torch loads OpenMP
    import torch

    if policy != "default":
        threads.configure("auto")

    from stars_core import StarsConfig, build_model

    if model == "demo":
        net = build_model(StarsConfig(in_channels=(2, 4), num_classes=6, backbone="resnet18", encoder_width=32))
        inputs = (torch.randn(2, 2, 128, 128), torch.randn(2, 4, 128, 128))
    else:
        net = build_model(StarsConfig(in_channels=(2, 4), num_classes=6, backbone="resnet50"))
        inputs = (torch.randn(1, 2, 512, 512),)
    net.eval()
    adapt = threads.adapt if policy != "default" else (lambda: None)
    with torch.inference_mode():
        end_warm = time.perf_counter() + warmup
        while time.perf_counter() < end_warm:
            adapt()
            net(*inputs)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            adapt()
            net(*inputs)
            n += 1
    print(f"{n / (time.perf_counter() - start):.4f}", flush=True)


def busy_loop() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) % 2**31


def run(model: str, policy: str, competitor: str, seconds: float, warmup: float) -> float:
    me = [sys.executable, __file__, "--worker", model, policy, str(seconds), str(warmup)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    other = None
    if competitor == "copy":
        other = subprocess.Popen(me[:-2] + [str(seconds + 2 * warmup), str(warmup)], env=env,
                                 stdout=subprocess.DEVNULL)
    elif competitor == "busy loop":
        other = subprocess.Popen([sys.executable, __file__, "--busy"], env=env)
    try:
        if other is not None:
            time.sleep(1.0)
        out = subprocess.run(me, env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        if other is not None:
            other.kill()
            other.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--policies", nargs="+", default=["default", "stars"], choices=list(POLICIES))
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--busy", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.busy:
        busy_loop()
    if args.worker:
        model, policy, seconds, warmup = args.worker
        worker(model, policy, float(seconds), float(warmup))
        return
    import torch

    print(f"# contention: {os.cpu_count()} cores, torch {torch.__version__}, {platform.machine()}, "
          f"{args.seconds:g} s per measurement after {args.warmup:g} s warm-up; env OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    print("\n| model | policy | alone (it/s) | beside a copy of itself | beside a busy loop | copy / alone | "
          "busy / alone |\n|---|---|---|---|---|---|---|")
    for model in args.models:
        rows = {}
        for policy in args.policies:
            r = [run(model, policy, c, args.seconds, args.warmup) for c in ("none", "copy", "busy loop")]
            rows[policy] = r
            print(f"| {MODELS[model]} | {policy} | {r[0]:.3f} | {r[1]:.3f} | {r[2]:.3f} | {r[1] / r[0]:.2f} | "
                  f"{r[2] / r[0]:.2f} |", flush=True)
        if "stars" in rows and "default" in rows:
            ratio = [rows["stars"][i] / rows["default"][i] for i in range(3)]
            print(f"| {MODELS[model]} | stars / default | {ratio[0]:.2f} | {ratio[1]:.2f} | {ratio[2]:.2f} | | |",
                  flush=True)


if __name__ == "__main__":
    main()
