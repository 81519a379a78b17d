"""`stars distill`: a fast SAR-only student from a STARS teacher."""
from __future__ import annotations

from ..config import BACKBONES
from .stop import STOP

EPILOG = """examples:
  stars distill model.stars --m1 sar_a.tif --m1 sar_b.tif --out fast.stars
  stars distill model.stars --m1 sar.tif --labels labels.tif --out fast.stars --backbone resnet18 --width 32
  (then segment with fast.stars as with any model: stars segment fast.stars sar.tif map.tif)
"""


def add_parsers(sub) -> None:
    import argparse

    from ..distill.config import STUDENT_DECODER, STUDENT_WIDTH, DistillConfig

    D = DistillConfig()
    ds = sub.add_parser("distill", help="train a fast SAR-only student that reproduces a STARS model's SAR-only map",
                        description="The student (one encoder, one decoder, SAR only) learns the teacher's SAR-only "
                        "class probabilities, softened by a temperature (Hinton et al. 2015), on chips of your SAR "
                        "rasters, labelled or not; with labels, their cross-entropy is added. The result is an "
                        "ordinary model file that names its teacher.", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ds.add_argument("teacher", help="the STARS model file to reproduce (.stars)")
    ds.add_argument("--m1", action="append", required=True, metavar="RASTER",
                    help="SAR (modality-1) raster to learn on; repeatable. Unlabelled rasters are fine")
    ds.add_argument("--labels", action="append", metavar="RASTER", help="label raster of each --m1, same order "
                    "(optional; values of the teacher's class table)")
    ds.add_argument("--ignore-value", type=int, action="append", default=[],
                    help="label value to leave out (e.g. 0 'no data'); repeatable")
    ds.add_argument("--out", required=True, help="student model file to write")
    ds.add_argument("--backbone", choices=BACKBONES, default=D.backbone, help=f"default {D.backbone}")
    ds.add_argument("--width", type=int, default=D.encoder_width, help=f"encoder base width (default {STUDENT_WIDTH}, "
                    "or the teacher's where it is narrower; ImageNet's ResNets: 64)")
    ds.add_argument("--decoder-channels", type=int, default=D.decoder_channels,
                    help=f"the decoder's pyramid channels (default {STUDENT_DECODER}, or the teacher's where it has "
                    f"fewer; STARS's: 256)")
    ds.add_argument("--steps", type=int, default=D.steps, help=f"training steps (default {D.steps})")
    ds.add_argument("--batch-size", type=int, default=D.batch_size, help=f"chips per step (default {D.batch_size})")
    ds.add_argument("--chip-size", type=int, help="chip side in pixels (default: the teacher's training chip size)")
    ds.add_argument("--lr", type=float, default=D.lr, help=f"peak learning rate (default {D.lr:g})")
    ds.add_argument("--temperature", type=float, default=D.temperature,
                    help=f"softens both models' probabilities (default {D.temperature:g})")
    ds.add_argument("--label-weight", type=float, default=D.label_weight,
                    help=f"weight of the labels' cross-entropy (default {D.label_weight:g})")
    ds.add_argument("--seed", type=int, default=0, help="random seed of the student's weights and chips (default 0)")
    ds.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ds.add_argument("--no-amp", action="store_true", help="plain fp32: no bf16 autocast on CUDA and no channels-last "
                    "memory on a CPU with AMX or AVX-512 BF16 (the log's 'precision:' line says which ran)")


def cmd_distill(args) -> int:
    from ..distill import DistillConfig, distill
    from ..progress import progress_bar

    cfg = DistillConfig(backbone=args.backbone, encoder_width=args.width, decoder_channels=args.decoder_channels,
                        steps=args.steps, batch_size=args.batch_size, chip_size=args.chip_size, lr=args.lr,
                        temperature=args.temperature, label_weight=args.label_weight,
                        ignore_values=tuple(args.ignore_value), seed=args.seed, device=args.device,
                        amp=not args.no_amp)
    bar = None

    def progress(step: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = progress_bar(total, "step", initial=step - 1, what="distilling: ")
        bar.update(1)

    try:
        result = distill(args.teacher, args.m1, args.out, cfg, labels=args.labels, progress=progress, cancel=STOP,
                         log=print)
    finally:
        if bar is not None:
            bar.close()
    print(f"wrote {result.path} in {result.seconds / 60:.1f} min")
    return 0


HANDLERS = {"distill": cmd_distill}
