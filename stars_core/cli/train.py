"""`stars demo-scene` and `stars train`."""
from __future__ import annotations

import argparse

from ..config import (BAND_NUMBERINGS, BACKBONES, LR_FACTOR, MODES, PAPER_STEPS, PAPER_WARMUP, DataConfig, LossConfig,
                      StarsConfig, TrainConfig)
from ..errors import InputError
from .common import chip_folder, chip_folder_arguments, int_list
from .stop import STOP


EPILOG_TRAIN = """examples:
  stars demo-scene --out demo
  stars train --m1 demo/sar.tif --m2 demo/optical.tif --labels demo/labels.tif \\
      --class-table demo/classes.csv --out demo/model.stars --backbone resnet18 --steps 500
  (the paper's recipe scaled to 500 steps: warm-up, validation and model-file cadence follow --steps)
  several scenes: repeat --m1/--m2/--labels in the same order (one --labels polygon file may serve all)
  continue a run: stars train --m1 ... --resume demo/model.stars --out demo/model.stars
  (it finishes the saved run; --steps 2000 trains to 2000 steps instead)
"""


def _demo_scene_parser(sub) -> None:
    demo = sub.add_parser("demo-scene", help="write the generated demo scene (SAR, optical, labels, sheets)")
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--size", type=int, default=2048, help="pixels per side (default 2048)")
    demo.add_argument("--seed", type=int, default=0, help="random seed: the same seed, the same scene (default 0)")
    demo.add_argument("--sheets", default="2x2", help="map-sheet grid, ROWSxCOLS (default 2x2)")
    demo.add_argument("--pixel-size", type=float, default=2.0, help="metres per pixel (default 2)")
    demo.add_argument("--dates", type=int, default=1, metavar="N", help="also write a SAR series of N dates (12 days "
                      "apart) with known changes and the true labels of every date, into OUT/series (default 1: none)")
    demo.add_argument("--sar-noise", choices=["normal", "high"], default="normal",
                      help="high: single-look speckle and close class means, so SAR alone separates the classes "
                      "poorly and what optical teaches in training can show (same labels and optical image)")


def cmd_demo_scene(args) -> int:
    from ..demo_scene import make_demo_scene
    from ..files import check_outputs

    try:
        rows, cols = (int(v) for v in args.sheets.lower().split("x"))
    except ValueError:
        raise InputError(f"--sheets must look like 2x2, got {args.sheets!r}") from None
    if args.dates < 1:  # before the scene is made, not after
        raise InputError(f"--dates must be 1 or more, got {args.dates}")
    check_outputs({}, {}, {"--out": args.out})  # a folder (a file named --out is refused in one line)
    paths = make_demo_scene(args.out, size=args.size, seed=args.seed, sheets=(rows, cols), pixel_size=args.pixel_size,
                            sar_noise=args.sar_noise)
    if args.dates > 1:
        from ..change.demo_series import make_demo_series

        series = make_demo_series(args.out, args.dates, size=args.size, seed=args.seed, pixel_size=args.pixel_size)
        paths.update({f"series {k}": v for k, v in series.items()})
    for name, path in paths.items():
        print(f"{name:<8} {path}")
    return 0


def _train_parser(sub) -> None:
    tr = sub.add_parser("train", help="train a model on paired rasters", epilog=EPILOG_TRAIN,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    _train_inputs(tr)
    _train_model_and_losses(tr)
    _train_schedule(tr)


def _train_inputs(tr) -> None:
    g = tr.add_argument_group("inputs (georeferenced scenes, or a chip folder with --chips)")
    g.add_argument("--m1", action="append", default=[], help="modality-1 raster (SAR or DSM); repeat per scene")
    g.add_argument("--m2", action="append", default=[], help="modality-2 raster (optical); repeat per scene")
    g.add_argument("--labels", action="append", default=[],
                   help="label raster, or polygon file with --class-field; repeat per scene or give one for all")
    g.add_argument("--scenes", metavar="CSV", help="a table of scenes: columns m1, m2, labels, optional aoi and "
                   "name (paths relative to the CSV); hundreds of scenes are fine")
    g.add_argument("--skip-bad-scenes", action="store_true", help="leave out scenes that fail to open or align "
                   "(each is named with its reason, and listed in the model file) instead of stopping")
    chip_folder_arguments(g)
    g.add_argument("--class-field", help="attribute holding the class (polygon labels)")
    g.add_argument("--class-table", help="CSV (value,name,color) or JSON class table")
    g.add_argument("--ignore-value", type=int, action="append", default=[],
                   help="label value to leave out of training (e.g. 0 'no data', clouds); repeatable")
    g.add_argument("--aoi", help="polygon file limiting where training chips come from")
    g.add_argument("--m1-name", default="SAR", help="name of modality 1 (default SAR)")
    g.add_argument("--m2-name", default="optical", help="name of modality 2 (default optical)")
    g.add_argument("--out", required=True, help="model file to write (e.g. model.stars)")


def _train_model_and_losses(tr) -> None:
    M, L = StarsConfig(), LossConfig()
    g = tr.add_argument_group("model")
    g.add_argument("--backbone", default=M.backbone, choices=BACKBONES, help=f"ResNet depth (default {M.backbone})")
    g.add_argument("--encoder-width", type=int, default=M.encoder_width,
                   help=f"ResNet base width ({M.encoder_width} = standard)")
    g.add_argument("--mode", default=M.mode, choices=MODES,
                   help="stars, or a baseline: single (modality 1 only), concat (early fusion)")
    g.add_argument("--pretrained", metavar="FILE|NAME", help="ResNet weights for every encoder: a registry name "
                   "(`stars weights list`, fetched once) or a local file (torchvision or "
                   "timm layout, e.g. ImageNet)")
    g.add_argument("--pretrained-m1", metavar="FILE|NAME", help="weights for the modality-1 encoders, e.g. "
                   "ssl4eo-s1-resnet50 (SAR self-supervised SSL4EO-S12 weights as torchgeo publishes them)")
    g.add_argument("--pretrained-m2", metavar="FILE|NAME", help="weights for the modality-2 encoders, e.g. "
                   "imagenet-resnet50 or ssl4eo-s2-resnet50; the shared encoder takes --pretrained, else these")
    g.add_argument("--band-numbering", choices=list(BAND_NUMBERINGS), default="sentinel-2",
                   help="whose numbers band names like B1..B12 are, when pretrained first-layer filters are picked by "
                   "band name (default sentinel-2; a Landsat 5/7 or 4-band Planet B1 is blue, Sentinel-2's coastal)")
    g.add_argument("--no-translation", action="store_true", help="ablation: no translation modules")
    g = tr.add_argument_group("losses")
    g.add_argument("--alpha", type=float, default=L.alpha, help=f"weight of L_psc (default {L.alpha})")
    g.add_argument("--beta", type=float, default=L.beta, help=f"weight of L_ncs (default {L.beta})")
    g.add_argument("--samples-per-class", type=int, default=L.n_samples,
                   help=f"PSA pixels per class (N, default {L.n_samples})")
    g.add_argument("--tau", type=float, default=L.tau, help=f"L_psc temperature (default {L.tau})")
    g.add_argument("--class-weights", choices=["none", "inverse", "sqrt-inverse"], default="none",
                   help="weight L_seg's cross-entropy by class: none (default, the paper's), or the inverse or "
                   "inverse square root of the training labels' pixel frequencies (helps thin classes, if anything)")
    g.add_argument("--no-ncs", action="store_true", help="ablation: no L_ncs")
    g.add_argument("--no-psc", action="store_true", help="ablation: no L_psc")
    g.add_argument("--no-detach", action="store_true", help="ablation: no stop-gradient in L_ncs")
    g.add_argument("--psa-exclude", type=int, action="append", default=[], metavar="VALUE",
                   help="class value left out of PSA's balanced pixel sampling (the paper leaves out "
                   "background); repeatable")


def _train_schedule(tr) -> None:
    T, D = TrainConfig(), DataConfig()
    g = tr.add_argument_group("schedule (defaults: the paper's recipe, scaled to --steps)")
    g.add_argument("--steps", type=int, help=f"training steps (default {T.steps}; with --resume: the saved run's)")
    g.add_argument("--batch-size", type=int, default=T.batch_size, help=f"chips per step (default {T.batch_size})")
    g.add_argument("--chip-size", type=int, default=D.chip_size, help="multiple of 32; reduced for small scenes")
    g.add_argument("--lr", type=float, help=f"peak learning rate (default {T.lr:g}; with --init-from "
                   f"{T.lr / 10:g})")
    g.add_argument("--warmup-steps", type=int,
                   help=f"default: {PAPER_WARMUP} of {PAPER_STEPS} steps, the paper's share, scaled to --steps")
    g.add_argument("--weight-decay", type=float, default=T.weight_decay,
                   help=f"Adam's weight decay (default {T.weight_decay:g})")
    g.add_argument("--grad-clip", type=float, default=T.grad_clip,
                   help=f"largest gradient norm (default {T.grad_clip:g})")
    g.add_argument("--val-fraction", type=float, default=D.val_fraction, help="share of chip-sized blocks held out")
    g.add_argument("--val-every", type=int, help="steps between validations (default: 5 per run, at most 1000 apart)")
    g.add_argument("--checkpoint-every", type=int,
                   help="steps between model-file writes (default: 10 per run, at most 500 apart)")
    g.add_argument("--min-valid", type=float, default=D.min_valid, help="least labelled share of a chip")
    g.add_argument("--seed", type=int, default=T.seed,
                   help=f"random seed of weights, chips and sampling (default {T.seed}; same seed, same run)")
    g.add_argument("--device", default=T.device, help="auto, cpu, cuda or cuda:N")
    g.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA, and no channels-last memory on a "
                   "CPU: plain fp32")
    g.add_argument("--cpu-bf16", action="store_true", help="on a CPU with AMX or AVX-512 BF16: bf16 autocast (about "
                   "1.6x faster steps than the default fp32 there, about 0.4 points lower mIoU at equal steps on the demo)")
    g.add_argument("--workers", type=int, default=T.num_workers, help=f"data-loading processes (default {T.num_workers})")
    g.add_argument("--resume", help="model file of an unfinished run to continue")
    g.add_argument("--init-from", metavar="MODEL", help="fine-tune: start a new run from the weights of a trained "
                   "model file (its architecture; classes matched by value keep their classifier rows; the new "
                   "area's band statistics; default --lr a tenth of the paper's)")
    g.add_argument("--freeze", choices=["none", "encoders", "shared"], default="none",
                   help="with --init-from: parts that keep the source's weights (no gradient, BatchNorm statistics "
                   "kept)")
    g.add_argument("--keep-best", action="store_true", help="also keep the weights of the best validation mIoU "
                   "(modality 1 alone) in the model file; segmentation uses them unless given --weights last")
    g.add_argument("--recalibrate", type=int, default=0, metavar="CHIPS",
                   help="at the end, re-estimate the shared encoder's per-modality BatchNorm statistics from this "
                   "many training chips per modality (as `stars recalibrate`; default 0: off)")
    g = tr.add_argument_group("diagnostics")
    g.add_argument("--diagnostics", metavar="DIR",
                   help="draw PNGs here: cross-modal class similarity matrix (paper Fig. 10), curves, confusion")
    g.add_argument("--similarity-steps", type=int_list, default=(), metavar="N,N,...",
                   help="steps at which to draw the similarity matrix too (always: before training and at the end)")


def _scenes(args):
    from ..training.data import SceneSpec

    if args.chips:
        if args.m1 or args.m2 or args.labels or args.scenes:
            raise InputError("give scenes (--m1/--m2/--labels or --scenes) or a chip folder (--chips), not both")
        return chip_folder(args).scenes()
    from ..training.data import read_scene_table

    table = read_scene_table(args.scenes, args.class_field) if args.scenes else []
    if not args.m1:
        if table:
            return table
        raise InputError("give the training data: --m1, --m2 and --labels per scene, --scenes CSV, or --chips ROOT")
    n = len(args.m1)
    labels = args.labels * n if len(args.labels) == 1 else args.labels
    if len(args.m2) != n or len(labels) != n:
        raise InputError(f"give one --m2 and one --labels per --m1 (got {n} --m1, {len(args.m2)} --m2, "
                         f"{len(args.labels)} --labels)")
    return table + [SceneSpec(a, b, c, args.class_field) for a, b, c in zip(args.m1, args.m2, labels)]


def train_settings(args) -> tuple[StarsConfig, LossConfig, TrainConfig | None, DataConfig]:
    """The configurations `stars train` builds from its flags. The recipe is `TrainConfig.for_steps`;
    with --resume it is the saved run's, with this machine's --device, --workers and --no-amp and,
    when given, a new --steps total."""
    model_cfg = StarsConfig(backbone=args.backbone, mode=args.mode, encoder_width=args.encoder_width,
                            use_translation=not args.no_translation)
    loss_cfg = LossConfig(alpha=args.alpha, beta=args.beta, n_samples=args.samples_per_class, tau=args.tau,
                          use_ncs=not args.no_ncs, use_psc=not args.no_psc, detach=not args.no_detach,
                          psa_exclude=tuple(args.psa_exclude), class_weights=args.class_weights)
    data_cfg = DataConfig(chip_size=args.chip_size, val_fraction=args.val_fraction, min_valid=args.min_valid,
                          class_table=args.class_table, ignore_values=tuple(args.ignore_value), aoi=args.aoi,
                          skip_bad_scenes=args.skip_bad_scenes, band_numbering=args.band_numbering)
    if args.resume:
        import dataclasses

        from ..checkpoint import read_resume

        saved = read_resume(args.resume)[0].train
        return model_cfg, loss_cfg, dataclasses.replace(
            saved, steps=args.steps if args.steps is not None else saved.steps, device=args.device,
            amp=not args.no_amp, cpu_bf16=args.cpu_bf16, num_workers=args.workers), data_cfg
    cadence = {k: v for k, v in (("warmup_steps", args.warmup_steps), ("val_every", args.val_every),
                                 ("checkpoint_every", args.checkpoint_every)) if v is not None}
    train_cfg = TrainConfig.for_steps(
        args.steps if args.steps is not None else TrainConfig().steps, batch_size=args.batch_size,
        lr=args.lr if args.lr is not None else TrainConfig().lr * (LR_FACTOR if args.init_from else 1.0),
        weight_decay=args.weight_decay, grad_clip=args.grad_clip, seed=args.seed, device=args.device,
        amp=not args.no_amp, cpu_bf16=args.cpu_bf16,
        num_workers=args.workers, keep_best=args.keep_best, **cadence)
    return model_cfg, loss_cfg, train_cfg, data_cfg


def cmd_train(args) -> int:
    from ..progress import progress_bar, say
    from ..training.train import train

    model_cfg, loss_cfg, train_cfg, data_cfg = train_settings(args)
    bar = None

    def progress(step: int, total: int, row: dict) -> None:
        nonlocal bar
        if bar is None:
            bar = progress_bar(total, "step", initial=step - 1, what="training: ")
        bar.update(1)
        bar.set_postfix({k: f"{row[k]:.3f}" for k in ("total", "seg", "psc", "ncs")})

    try:
        result = train(
            _scenes(args), args.out, model_cfg, loss_cfg, train_cfg, data_cfg, resume=args.resume,
            pretrained=args.pretrained, pretrained_m1=args.pretrained_m1, pretrained_m2=args.pretrained_m2,
            modalities=(args.m1_name, args.m2_name), progress=progress,
            log=say, diagnostics=args.diagnostics, similarity_steps=args.similarity_steps,
            cancel=STOP, recalibrate_chips=args.recalibrate, init_from=args.init_from, freeze=args.freeze,
        )
    finally:
        if bar is not None:
            bar.close()
    val = result.summary.get("validation", {})
    miou = val.get("val_m1_miou")
    print(f"wrote {result.path} after {result.steps_done} steps"
          + (f"; validation mIoU from {args.m1_name} alone: {miou:.4f}" if miou is not None else ""))
    if args.diagnostics:
        print(f"diagnostics in {args.diagnostics}")
    return 0


def add_parsers(sub) -> None:
    _demo_scene_parser(sub)
    _train_parser(sub)


HANDLERS = {"demo-scene": cmd_demo_scene, "train": cmd_train}
