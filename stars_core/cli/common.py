"""What several `stars` commands share: help texts, the minimum-mapping-unit, simplification and
report arguments, and small argument types."""
from __future__ import annotations

import argparse

from ..config import RUNTIMES, WEIGHTS
from ..errors import InputError


READ_THREADS_HELP = ("threads reading tiles while the model runs, each with its own GDAL handles (default: 1 on "
                     "CPU, one per tile of a batch on CUDA; at most the batch size is used)")


RUNTIME_HELP = ("what runs a .stars model: auto (default: int8 on a CPU where ONNX Runtime is installed, the fused "
                "branch in fp32 ONNX; PyTorch on CUDA), torch (eager PyTorch, the reference), onnx (fp32 export, "
                "about 1.2x PyTorch's speed, the same map up to rounding), int8 (quantised export, 3-5x by CPU, a few "
                "near-tie pixels change class; calibrated on the raster it first segments). Exports run in OpenVINO "
                "where installed, else ONNX Runtime; they are made once (a ResNet-50: 1-2 min) and cached beside the "
                "model; each run prints its measured agreement with PyTorch")


def engine_arguments(p, device_help: str = "auto, cpu, cuda or cuda:N") -> None:
    """The tiling and engine flags of every segmenting command (segment, segment-sheets, segment-series)."""
    p.add_argument("--tile-size", type=int, help="model input size, multiple of 32 (default: the model's training "
                   "chip size)")
    p.add_argument("--overlap", type=int, help="pixels shared by neighbouring tiles (default: an eighth of a tile, "
                   "at least 32: 64 at 512)")
    p.add_argument("--batch-size", type=int, help="tiles per forward pass (default: 1 on CPU, where batching is "
                   "slower per tile, 4 on CUDA)")
    p.add_argument("--read-threads", type=int, help=READ_THREADS_HELP)
    p.add_argument("--runtime", choices=RUNTIMES, default="auto", help=RUNTIME_HELP)
    p.add_argument("--weights", choices=WEIGHTS, default="best", help="a model trained with --keep-best: "
                   "its best validation weights (default) or its last")
    p.add_argument("--device", default="auto", help=device_help)


def segment_config(args, **overrides):
    """The `SegmentConfig` of a segmenting command's parsed flags: `engine_arguments` and --modality,
    and where the command has them --mmu/--mmu-pixels/--connectivity, --no-amp and --resample;
    `overrides` (e.g. the device of one torchrun process) win."""
    from ..config import SegmentConfig

    values = dict(tile_size=args.tile_size, overlap=args.overlap, batch_size=args.batch_size, device=args.device,
                  read_threads=args.read_threads, runtime=args.runtime, weights=args.weights, modality=args.modality)
    if hasattr(args, "mmu"):
        values.update(mmu=mmu_value(args), mmu_connectivity=args.connectivity)
    if hasattr(args, "no_amp"):
        values["amp"] = not args.no_amp
    if hasattr(args, "resample"):
        values["resample"] = args.resample
    return SegmentConfig(**{**values, **overrides})


def mmu_arguments(p, what: str = "the class map") -> None:
    p.add_argument("--mmu", metavar="AREA", help=f"clean {what} to a minimum mapping unit: patches smaller than "
                   "AREA (0.5ha, 500m2, 0.01km2) merge into their largest neighbour; no-data stays")
    p.add_argument("--mmu-pixels", type=int, metavar="N", help="the minimum mapping unit in pixels instead")
    p.add_argument("--connectivity", type=int, choices=[4, 8], default=8,
                   help="pixels of a patch touch by their sides (4) or also their corners (8, default)")


def mmu_value(args) -> str | None:
    if args.mmu is not None and args.mmu_pixels is not None:
        raise InputError("give --mmu (an area) or --mmu-pixels, not both")
    return args.mmu if args.mmu is not None else (None if args.mmu_pixels is None else f"{args.mmu_pixels}px")


def simplify_argument(p) -> None:
    p.add_argument("--simplify", metavar="DISTANCE", help="simplify the polygon outlines to this tolerance, in pixels "
                   "(1px) or metres (15m); neighbours keep sharing their boundaries (no gaps, no overlaps)")


def report_arguments(p, which: str) -> None:
    """The report files `stars evaluate` and `stars evaluate-chips` write."""
    p.add_argument("--json", metavar="PATH", help="write the metrics as JSON")
    p.add_argument("--markdown", metavar="PATH", help=f"write a Markdown report{which}")
    p.add_argument("--html", metavar="PATH", help=f"write an HTML report{which}")
    p.add_argument("--png", metavar="PATH", help=f"write the confusion matrix as a PNG{which}")


def threads_value(text: str) -> int | str:
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"--threads must be a positive number or auto, got {text!r}")
    return int(text)


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated step numbers like 100,500, got {text!r}") from None


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def chip_folder_arguments(g, root_flag: bool = True) -> None:
    from ..training.chips import ChipFolder

    d = ChipFolder("")
    if root_flag:
        g.add_argument("--chips", metavar="ROOT", help="a folder of paired, non-georeferenced chips matched by "
                       "name (EarthMiss layout by default: SAR/<name>_SAR.tif, RGB/<name>.tif, mask/<name>_mask.tif)")
    for key, what in (("m1_dir", "modality-1"), ("m2_dir", "modality-2"), ("labels_dir", "label")):
        g.add_argument(f"--{key.replace('_', '-')}", default=getattr(d, key),
                       help=f"sub-folder of the {what} chips (default {getattr(d, key)!r})")
    for key, what in (("m1_suffix", "modality-1"), ("m2_suffix", "modality-2"), ("labels_suffix", "label")):
        g.add_argument(f"--{key.replace('_', '-')}", default=getattr(d, key),
                       help=f"end of the {what} chip names before the extension (default {getattr(d, key)!r})")


def chip_folder(args):
    from ..training.chips import ChipFolder

    return ChipFolder(args.chips, args.m1_dir, args.m2_dir, args.labels_dir, args.m1_suffix, args.m2_suffix,
                      args.labels_suffix)
