"""Model size and speed: parameters per part, forward and forward+backward time per 512x512 chip,
and the forward passes' GFLOP/s against this machine's matmul GFLOP/s (the practical peak).

Prints, never asserts. CPU: fp32 (the fast path on this AVX2 machine). CUDA, when present: autocast
bf16 with channels_last as well. Usage: python bench/model_speed.py [--backbone resnet50] [--size 512]
[--batches 1 8] [--repeats 3] [--device auto|cpu|cuda]
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import time

from stars_core import threads  # first: the toolbox's thread policy, set before torch loads

threads.prepare_environment()
import torch
from torch.utils.flop_counter import FlopCounterMode

from stars_core import LossConfig, StarsConfig, build_model
from stars_core.training.losses import stars_loss

threads.configure("auto")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """fp32 (CPU) or bf16 (CUDA) square matmul throughput: what the convolutions could reach at best."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return 2 * n**3 / _time(lambda: a @ b, device, repeats) / 1e9


def sar_only_tiles_per_second(model, variants, args, device: torch.device) -> None:
    """The missing-modality forward in tiles per second, per precision and batch, and compiled when
    asked (the GPU goal: 1000 tiles/s of 512 px on one H100 in bf16)."""
    print("\n| SAR-only forward | batch | tiles/s |\n|---|---|---|")
    model.eval()
    runs = list(variants)
    if args.compile:
        compiled = torch.compile(model)
        runs += [(f"{label}, torch.compile", ctx, fmt, compiled) for label, ctx, fmt in variants]
    for run in runs:
        label, ctx, fmt = run[:3]
        net = run[3] if len(run) > 3 else model
        model.to(memory_format=fmt)
        for b in sorted(set(args.batches) | ({32, 64} if device.type == "cuda" else set())):
            x1 = torch.randn(b, args.bands[0], args.size, args.size, device=device).to(memory_format=fmt)

            def missing():
                with torch.no_grad(), ctx():
                    net(x1)

            t = _time(missing, device, max(args.repeats, 3 if device.type == "cuda" else 1))
            print(f"| {label} | {b} | {b / t:.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--bands", type=int, nargs=2, default=[1, 3])
    ap.add_argument("--width", type=int, default=64, help="ResNet base width (64 = standard)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the SAR-only forward")
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    cfg = StarsConfig(in_channels=tuple(args.bands), num_classes=8, backbone=args.backbone, encoder_width=args.width)
    model = build_model(cfg).to(device)
    print(f"# STARS {args.backbone}, bands {tuple(args.bands)}, {args.size}x{args.size}, {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print("\n| part | parameters (M) |\n|---|---|")
    for name, part in model.parts().items():
        print(f"| {name} | {sum(p.numel() for p in part.parameters()) / 1e6:.2f} |")
    print(f"| total | {sum(p.numel() for p in model.parameters()) / 1e6:.2f} |")

    variants = [("fp32", contextlib.nullcontext, torch.contiguous_format)]
    if device.type == "cuda":
        bf16 = lambda: torch.autocast("cuda", dtype=torch.bfloat16)  # noqa: E731
        variants += [("bf16 autocast", bf16, torch.contiguous_format),
                     ("bf16 autocast + channels_last", bf16, torch.channels_last)]
    print("\n| precision | batch | forward s/chip | fwd+bwd s/chip | missing-modality fwd s/chip |\n|---|---|---|---|---|")
    gen = torch.Generator().manual_seed(0)
    peak = matmul_gflops(device)
    throughput = []
    for label, ctx, fmt in variants:
        model = model.to(memory_format=fmt)
        for b in args.batches:
            x1 = torch.randn(b, args.bands[0], args.size, args.size, device=device).to(memory_format=fmt)
            x2 = torch.randn(b, args.bands[1], args.size, args.size, device=device).to(memory_format=fmt)
            y = torch.randint(0, 8, (b, args.size, args.size), device=device)

            def fwd():
                with torch.no_grad(), ctx():
                    model(x1, x2)

            def fwd_bwd():
                model.zero_grad(set_to_none=True)
                with ctx():
                    loss, _ = stars_loss(model(x1, x2), y, LossConfig(), gen)
                loss.backward()

            def missing():
                with torch.no_grad(), ctx():
                    model(x1)

            model.train()
            t_fb = _time(fwd_bwd, device, args.repeats)
            model.eval()
            t_f, t_m = _time(fwd, device, args.repeats), _time(missing, device, args.repeats)
            print(f"| {label} | {b} | {t_f / b:.3f} | {t_fb / b:.3f} | {t_m / b:.3f} |", flush=True)
            for name, fn, t in (("forward, both modalities", fwd, t_f), ("forward, modality 1 alone", missing, t_m)):
                throughput.append((label, b, name, count_flops(fn) / b / 1e9, t / b))
    sar_only_tiles_per_second(model, variants, args, device)
    print(f"\nmatmul {'bf16' if device.type == 'cuda' else 'fp32'} 2048x2048: {peak:.0f} GFLOP/s on this machine")
    print("\n| precision | batch | pass | GFLOP/chip | GFLOP/s | share of matmul GFLOP/s |\n|---|---|---|---|---|---|")
    for label, b, name, gflop, seconds in throughput:
        print(f"| {label} | {b} | {name} | {gflop:.1f} | {gflop / seconds:.0f} | {gflop / seconds / peak:.2f} |")


if __name__ == "__main__":
    main()
