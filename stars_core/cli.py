"""The `stars` command line: demo-scene, train, info, segment, evaluate, recalibrate."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .config import (BAND_NUMBERINGS, BACKBONES, LR_FACTOR, MODES, PAPER_STEPS, PAPER_WARMUP, DataConfig, LossConfig, SegmentConfig,
                     StarsConfig, TrainConfig)
from .errors import Cancelled, InputError, StarsError, TrainingError

EPILOG_TRAIN = """examples:
  stars demo-scene --out demo
  stars train --m1 demo/sar.tif --m2 demo/optical.tif --labels demo/labels.tif \\
      --class-table demo/classes.csv --out demo/model.stars --backbone resnet18 --steps 500
  (the paper's recipe scaled to 500 steps: warm-up, validation and model-file cadence follow --steps)
  several scenes: repeat --m1/--m2/--labels in the same order (one --labels polygon file may serve all)
  continue a run: stars train --m1 ... --resume demo/model.stars --out demo/model.stars
  (it finishes the saved run; --steps 2000 trains to 2000 steps instead)
"""


EPILOG_SEGMENT = """examples:
  stars segment demo/model.stars demo/sar.tif demo/landcover.tif --confidence demo/confidence.tif
  with the optical image too:   stars segment demo/model.stars demo/sar.tif out.tif --with-m2 demo/optical.tif
  optical only (DSM+optical):   stars segment model.stars optical.tif out.tif --modality 2
"""
READ_THREADS_HELP = ("threads reading tiles while the model runs, each with its own GDAL handles (default: 1 on "
                     "CPU, one per tile of a batch on CUDA; at most the batch size is used)")
RUNTIME_HELP = ("what runs a .stars model: auto (default: int8 on a CPU where ONNX Runtime is installed, the fused "
                "branch in fp32 ONNX; PyTorch on CUDA), torch (eager PyTorch, the reference), onnx (fp32 export, "
                "about 1.2x PyTorch's speed, the same map up to rounding), int8 (quantised export, 3-5x by CPU, a few "
                "near-tie pixels change class; calibrated on the raster it first segments). Exports run in OpenVINO "
                "where installed, else ONNX Runtime; they are made once (a ResNet-50: 1-2 min) and cached beside the "
                "model; each run prints its measured agreement with PyTorch")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="stars", description="STARS: land cover from SAR (or DSM) alone, "
                                 "trained on SAR + optical pairs.")
    ap.add_argument("--threads", default="auto", metavar="N|auto",
                    help="CPU threads for PyTorch (default auto: as many as there are idle cores, re-checked "
                    "every few seconds, so a busy machine does not slow training 10-40x; OMP_NUM_THREADS "
                    "fixes the count too)")
    sub = ap.add_subparsers(dest="command", required=True)

    _demo_scene_parser(sub)
    _train_parser(sub)
    _segment_parser(sub)
    _evaluate_and_info_parsers(sub)
    _recalibrate_parser(sub)
    _evaluate_chips_parser(sub)
    _export_parser(sub)
    _sheets_parsers(sub)
    _clean_parser(sub)
    _polygons_parser(sub)
    from .accuracy.cli import add_parsers as accuracy_parsers

    accuracy_parsers(sub)  # stars sample, stars assess
    from .weights.cli import add_parsers as weights_parsers

    weights_parsers(sub)  # stars weights list|download
    return ap


def _sheets_parsers(sub) -> None:
    S = SegmentConfig()
    ss = sub.add_parser("segment-sheets", help="segment a large raster sheet by sheet (one or many processes)",
                        description="One clipped GeoTIFF per map sheet, mosaic.vrt and summary.csv; sheets already "
                        "done are skipped, so a rerun completes an interrupted run. Under `torchrun "
                        "--nproc_per_node N [--nnodes M ...]` every process takes its share of the sheets (largest "
                        "first; one GPU per process on CUDA) and the first writes the mosaic and summary at the end.")
    ss.add_argument("model", help="model file (.stars or exported .onnx)")
    ss.add_argument("sheets", help="polygon file of the map sheets (e.g. from `stars make-sheets`)")
    ss.add_argument("input", help="raster to segment (SAR/DSM unless --modality 2; a VRT works)")
    ss.add_argument("out_dir", help="output folder")
    ss.add_argument("--name-field", help="attribute naming the sheets (default: numbered)")
    ss.add_argument("--no-skip-existing", action="store_true", help="segment sheets already done again")
    ss.add_argument("--dry-run", action="store_true", help="print which process takes which sheets and stop")
    ss.add_argument("--processes", type=int, help="with --dry-run: the number of processes to plan for "
                    "(default: torchrun's WORLD_SIZE, else 1)")
    ss.add_argument("--tile-size", type=int, help="model input size (default: the training chip size)")
    ss.add_argument("--overlap", type=int)
    ss.add_argument("--batch-size", type=int)
    ss.add_argument("--read-threads", type=int, help=READ_THREADS_HELP)
    ss.add_argument("--runtime", choices=["auto", "torch", "onnx", "int8"], default="auto", help=RUNTIME_HELP)
    ss.add_argument("--weights", choices=["best", "last"], default="best", help="a model trained with "
                     "--keep-best: its best validation weights (default) or its last")
    _mmu_arguments(ss, "the mosaic (as one raster, so no seams; written as mosaic_mmu.tif)")
    ss.add_argument("--device", default=S.device, help="auto, cpu, cuda or cuda:N (under torchrun, auto and "
                    "cuda take the process's local GPU)")
    ss.add_argument("--modality", type=int, choices=[1, 2], default=1)
    ms = sub.add_parser("make-sheets", help="write a grid of map sheets covering a raster (GeoPackage)")
    ms.add_argument("input", help="raster to cover")
    ms.add_argument("--size", type=int, required=True, help="sheet side in pixels")
    ms.add_argument("--overlap", type=int, default=0, help="pixels added on each side of a sheet (default 0)")
    ms.add_argument("--out", required=True, help="GeoPackage to write (layer 'sheets', field 'name')")


def cmd_make_sheets(args) -> int:
    from .sheets import make_sheet_grid

    n = make_sheet_grid(args.input, args.size, args.out, args.overlap)
    print(f"wrote {n} sheets to {args.out}")
    return 0


def cmd_segment_sheets(args) -> int:
    import os

    from .sheets import Share, plan_sheets, read_sheets, segment_sheets

    if args.processes is not None and (args.processes < 1 or not args.dry_run):
        raise InputError(f"--processes must be 1 or more and goes with --dry-run (a real run takes its processes "
                         f"from torchrun --nproc-per-node), got {args.processes}")
    sheets = read_sheets(args.sheets, args.name_field)
    share = Share.from_env()
    if args.dry_run:
        world = args.processes or share.world
        plan = plan_sheets(args.input, sheets, world)
        for rank, mine in enumerate(plan.shares):
            px = sum(0 if plan.windows[i] is None else plan.windows[i].width * plan.windows[i].height for i in mine)
            print(f"process {rank}: {len(mine)} sheets, {px:,} pixels: {', '.join(plan.names[i] for i in mine)}")
        for i, (status, why) in sorted(plan.unusable.items()):
            print(f"not segmented: {plan.names[i]} ({status}): {why}")
        return 0
    device, barrier = args.device, None
    if share.world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")  # barriers only: the sheets need no communication
        barrier = dist.barrier
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device in ("auto", "cuda") and _cuda_available():
            device = f"cuda:{local}"
    cfg = SegmentConfig(tile_size=args.tile_size, overlap=args.overlap, batch_size=args.batch_size, device=device,
                        modality=args.modality, read_threads=args.read_threads, mmu=_mmu(args),
                        mmu_connectivity=args.connectivity, runtime=args.runtime, weights=args.weights)
    log = print if share.rank == 0 else (lambda m: print(f"[process {share.rank}] {m}"))
    result = segment_sheets(args.model, args.input, sheets, args.out_dir, cfg,
                            skip_existing=not args.no_skip_existing, cancel=STOP, log=log, share=share,
                            barrier=barrier)
    if share.rank == 0:
        counts = {s: result.count(s) for s in ("done", "skipped", "failed", "outside", "invalid")}
        print(f"sheets: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed, "
              f"{counts['outside']} outside, {counts['invalid']} invalid; summary {result.summary}"
              + (f", mosaic {result.mosaic}" if result.mosaic else ""))
        if not counts["done"] + counts["skipped"]:
            print("stars segment-sheets: error: no sheet was segmented; summary.csv gives each sheet's reason",
                  file=sys.stderr)
        return 1 if counts["failed"] or not counts["done"] + counts["skipped"] else 0
    return 0


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _export_parser(sub) -> None:
    ex = sub.add_parser("export", help="export a branch to ONNX (segmentation without PyTorch; Deepness)",
                        description="Write one branch of a model file as an ONNX graph that takes raw band values "
                        "divided by 255 (Deepness's input scaling) and returns class probabilities; the model "
                        "file's normalisation is inside the graph and its classes, bands and pixel size in the "
                        "metadata. `stars segment model.onnx ...` runs it with ONNX Runtime.")
    ex.add_argument("model", help="model file written by `stars train`")
    ex.add_argument("output", help="ONNX file to write")
    ex.add_argument("--branch", choices=["m1", "m2", "fused"], default="m1",
                    help="m1: modality 1 alone, the missing-modality map (default); m2: optical alone; fused: both "
                    "(input: modality-1 bands then modality-2 bands)")
    ex.add_argument("--tile-size", type=int, help="tile size written in the metadata (default: the training chip "
                    "size); the graph takes any multiple of 32")
    ex.add_argument("--int8", action="store_true", help="static int8 quantisation (needs --calibrate)")
    ex.add_argument("--calibrate", metavar="RASTER", help="raster of the branch's input to calibrate int8 on")
    ex.add_argument("--weights", choices=["best", "last"], default="best", help="a model trained with "
                     "--keep-best: its best validation weights (default) or its last")


def cmd_export(args) -> int:
    from .engines.onnx_export import export_onnx

    export_onnx(args.model, args.output, args.branch, args.tile_size, args.int8, args.calibrate, log=print,
                weights=args.weights)
    return 0


def _evaluate_chips_parser(sub) -> None:
    ec = sub.add_parser("evaluate-chips", help="score a model on a chip folder: SAR alone, optical alone, both",
                        description="Accuracy of a model on a folder of paired chips (see `stars train --chips`), "
                        "from modality 1 alone, modality 2 alone and both; the reports are those of `stars evaluate` "
                        "for the modality-1 map, and the JSON holds all three.")
    ec.add_argument("model", help="model file written by `stars train`")
    ec.add_argument("root", help="chip folder root")
    _chip_folder_arguments(ec, root_flag=False)
    ec.add_argument("--ignore-value", type=int, action="append", default=[],
                    help="label value to leave out (EarthMiss: 0); repeatable")
    ec.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    _report_arguments(ec, " (modality 1 alone; the JSON holds every branch)")


def _report_arguments(p, which: str) -> None:
    """The report files `stars evaluate` and `stars evaluate-chips` write."""
    p.add_argument("--json", metavar="PATH", help="write the metrics as JSON")
    p.add_argument("--markdown", metavar="PATH", help=f"write a Markdown report{which}")
    p.add_argument("--html", metavar="PATH", help=f"write an HTML report{which}")
    p.add_argument("--png", metavar="PATH", help=f"write the confusion matrix as a PNG{which}")


def cmd_evaluate_chips(args) -> int:
    from .chips import evaluate_chips
    from .evaluate import check_report_paths, markdown_report, write_reports
    from .files import atomic_path

    args.chips = args.root
    check_report_paths(args.model, args.root, None, args.json, args.markdown, args.html, args.png)
    reports = evaluate_chips(args.model, _chip_folder(args), args.ignore_value, device=args.device, cancel=STOP)
    write_reports(reports["m1"], None, args.markdown, args.html, args.png)
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(reports, indent=2))
    print(markdown_report(reports["m1"]), end="")
    print("\n| input | mIoU | mF1 | overall accuracy |\n|---|---:|---:|---:|")
    for r in reports.values():
        print(f"| {r['prediction']} | {r['miou']:.4f} | {r['mf1']:.4f} | {r['oa']:.4f} |")
    return 0


def _recalibrate_parser(sub) -> None:
    rc = sub.add_parser("recalibrate", help="re-estimate the shared encoder's per-modality BatchNorm statistics",
                        description="Recompute the running statistics of the shared encoder's BatchNorms, per "
                        "modality, from rasters (no weight changes). Turns a format-2 model file (one mixed set "
                        "of statistics) into a per-modality one, or adapts the statistics to your own area.")
    rc.add_argument("model", help="model file written by `stars train`")
    rc.add_argument("--m1", action="append", default=[], help="modality-1 raster (SAR/DSM); repeatable")
    rc.add_argument("--m2", action="append", default=[], help="modality-2 raster (optical); repeatable")
    rc.add_argument("--out", help="write the recalibrated model here (default: replace MODEL, atomically)")
    rc.add_argument("--chips", type=int, default=64, help="chips per modality (default 64)")
    rc.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    rc.add_argument("--seed", type=int, default=0)


def _demo_scene_parser(sub) -> None:
    demo = sub.add_parser("demo-scene", help="write the generated demo scene (SAR, optical, labels, sheets)")
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--size", type=int, default=2048, help="pixels per side (default 2048)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--sheets", default="2x2", help="map-sheet grid, ROWSxCOLS (default 2x2)")
    demo.add_argument("--pixel-size", type=float, default=2.0, help="metres per pixel (default 2)")
    demo.add_argument("--sar-noise", choices=["normal", "high"], default="normal",
                      help="high: single-look speckle and close class means, so SAR alone separates the classes "
                      "poorly and what optical teaches in training can show (same labels and optical image)")


def _train_parser(sub) -> None:
    M, L, T, D = StarsConfig(), LossConfig(), TrainConfig(), DataConfig()
    tr = sub.add_parser("train", help="train a model on paired rasters", epilog=EPILOG_TRAIN,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = tr.add_argument_group("inputs (georeferenced scenes, or a chip folder with --chips)")
    g.add_argument("--m1", action="append", default=[], help="modality-1 raster (SAR or DSM); repeat per scene")
    g.add_argument("--m2", action="append", default=[], help="modality-2 raster (optical); repeat per scene")
    g.add_argument("--labels", action="append", default=[],
                   help="label raster, or polygon file with --class-field; repeat per scene or give one for all")
    g.add_argument("--scenes", metavar="CSV", help="a table of scenes: columns m1, m2, labels, optional aoi and "
                   "name (paths relative to the CSV); hundreds of scenes are fine")
    g.add_argument("--skip-bad-scenes", action="store_true", help="leave out scenes that fail to open or align "
                   "(each is named with its reason, and listed in the model file) instead of stopping")
    _chip_folder_arguments(g)
    g.add_argument("--class-field", help="attribute holding the class (polygon labels)")
    g.add_argument("--class-table", help="CSV (value,name,color) or JSON class table")
    g.add_argument("--ignore-value", type=int, action="append", default=[],
                   help="label value to leave out of training (e.g. 0 'no data', clouds); repeatable")
    g.add_argument("--aoi", help="polygon file limiting where training chips come from")
    g.add_argument("--m1-name", default="SAR", help="name of modality 1 (default SAR)")
    g.add_argument("--m2-name", default="optical", help="name of modality 2 (default optical)")
    g.add_argument("--out", required=True, help="model file to write (e.g. model.stars)")
    g = tr.add_argument_group("model")
    g.add_argument("--backbone", default=M.backbone, choices=BACKBONES)
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
    g = tr.add_argument_group("schedule (defaults: the paper's recipe, scaled to --steps)")
    g.add_argument("--steps", type=int, help=f"training steps (default {T.steps}; with --resume: the saved run's)")
    g.add_argument("--batch-size", type=int, default=T.batch_size)
    g.add_argument("--chip-size", type=int, default=D.chip_size, help="multiple of 32; reduced for small scenes")
    g.add_argument("--lr", type=float, help=f"peak learning rate (default {T.lr:g}; with --init-from "
                   f"{T.lr / 10:g})")
    g.add_argument("--warmup-steps", type=int,
                   help=f"default: {PAPER_WARMUP} of {PAPER_STEPS} steps, the paper's share, scaled to --steps")
    g.add_argument("--weight-decay", type=float, default=T.weight_decay)
    g.add_argument("--grad-clip", type=float, default=T.grad_clip)
    g.add_argument("--val-fraction", type=float, default=D.val_fraction, help="share of chip-sized blocks held out")
    g.add_argument("--val-every", type=int, help="steps between validations (default: 5 per run, at most 1000 apart)")
    g.add_argument("--checkpoint-every", type=int,
                   help="steps between model-file writes (default: 10 per run, at most 500 apart)")
    g.add_argument("--min-valid", type=float, default=D.min_valid, help="least labelled share of a chip")
    g.add_argument("--seed", type=int, default=T.seed)
    g.add_argument("--device", default=T.device, help="auto, cpu, cuda or cuda:N")
    g.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
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
    g.add_argument("--similarity-steps", type=_int_list, default=(), metavar="N,N,...",
                   help="steps at which to draw the similarity matrix too (always: before training and at the end)")


def _segment_parser(sub) -> None:
    S = SegmentConfig()
    seg = sub.add_parser("segment", help="classify a raster with a trained model (SAR alone by default)",
                         epilog=EPILOG_SEGMENT, formatter_class=argparse.RawDescriptionHelpFormatter)
    seg.add_argument("model", help="model file written by `stars train` (.stars), or exported by `stars export` "
                     "(.onnx: runs with ONNX Runtime, no PyTorch needed)")
    seg.add_argument("input", help="raster of the available modality (SAR/DSM unless --modality 2)")
    seg.add_argument("output", help="classified GeoTIFF to write")
    seg.add_argument("--tile-size", type=int, help="model input size, multiple of 32 (default: the model's "
                     "training chip size)")
    seg.add_argument("--overlap", type=int, help="pixels shared by neighbouring tiles (default: an eighth of a tile, at least 32: 64 at 512)")
    seg.add_argument("--batch-size", type=int, help="tiles per forward pass (default: 1 on CPU, where batching "
                     "is slower per tile, 4 on CUDA)")
    seg.add_argument("--read-threads", type=int, help=READ_THREADS_HELP)
    seg.add_argument("--runtime", choices=["auto", "torch", "onnx", "int8"], default="auto", help=RUNTIME_HELP)
    seg.add_argument("--weights", choices=["best", "last"], default="best", help="a model trained with "
                     "--keep-best: its best validation weights (default) or its last")
    seg.add_argument("--device", default=S.device, help="auto, cpu, cuda or cuda:N")
    seg.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    seg.add_argument("--confidence", metavar="PATH", help="also write the chosen class's probability")
    seg.add_argument("--probabilities", metavar="PATH", help="also write one probability band per class")
    seg.add_argument("--uncertainty", metavar="PATH", help="also write normalised entropy and margin (top-1 minus "
                     "top-2 probability), from the same pass")
    seg.add_argument("--polygons", metavar="GPKG", help="also write the class map as polygons (after --mmu), with "
                     "class names and areas")
    _simplify_argument(seg)
    seg.add_argument("--with-m2", metavar="PATH", help="optical raster of the same area: use both (fused branch)")
    seg.add_argument("--modality", type=int, choices=[1, 2], default=1,
                     help="which modality INPUT is: 1 = SAR/DSM (default), 2 = optical")
    seg.add_argument("--resample", action="store_true",
                     help="segment at the model's pixel size when the input's differs (result on the input grid)")
    _mmu_arguments(seg)
    seg.add_argument("--extent", metavar="XMIN,YMIN,XMAX,YMAX", help="segment only this extent (in the input's CRS "
                     "unless --extent-crs); the output covers it on the input's pixel grid")
    seg.add_argument("--extent-crs", metavar="CRS", help="CRS of --extent (e.g. EPSG:4326)")
    seg.add_argument("--mask", metavar="POLYGONS", help="polygon file: pixels outside its polygons are no data")


def _mmu_arguments(p, what: str = "the class map") -> None:
    p.add_argument("--mmu", metavar="AREA", help=f"clean {what} to a minimum mapping unit: patches smaller than "
                   "AREA (0.5ha, 500m2, 0.01km2) merge into their largest neighbour; no-data stays")
    p.add_argument("--mmu-pixels", type=int, metavar="N", help="the minimum mapping unit in pixels instead")
    p.add_argument("--connectivity", type=int, choices=[4, 8], default=8,
                   help="pixels of a patch touch by their sides (4) or also their corners (8, default)")


def _mmu(args) -> str | None:
    if args.mmu is not None and args.mmu_pixels is not None:
        raise InputError("give --mmu (an area) or --mmu-pixels, not both")
    return args.mmu if args.mmu is not None else (None if args.mmu_pixels is None else f"{args.mmu_pixels}px")


def _polygons_parser(sub) -> None:
    pg = sub.add_parser("polygons", help="a classified map as polygons with class names and areas",
                        description="One polygon per patch (GDAL's polygonize) with its class value, class name and "
                        "area in m2 and ha, written to a GeoPackage with a QGIS style in the class colours. Neighbours "
                        "share their boundaries (no gaps, no overlaps) and holes are kept; --min-area cleans the map to "
                        "that unit first, so small patches merge into their neighbours instead of leaving gaps.")
    pg.add_argument("map", help="classified raster (e.g. from `stars segment`)")
    pg.add_argument("output", help="GeoPackage to write (.gpkg)")
    pg.add_argument("--min-area", metavar="AREA", help="minimum polygon area (0.5ha, 500m2, 12px)")
    _simplify_argument(pg)
    pg.add_argument("--connectivity", type=int, choices=[4, 8], default=8)
    pg.add_argument("--class-table", help="CSV/JSON class table (default: the one stored in the map)")


def cmd_polygons(args) -> int:
    from .product.polygons import polygonize

    result = polygonize(args.map, args.output, args.min_area, args.connectivity, args.class_table, cancel=STOP,
                        log=print, simplify=args.simplify)
    print(f"wrote {args.output}: {result['polygons']:,} polygons, {result['area_m2'] / 10_000:,.1f} ha")
    return 0


def _simplify_argument(p) -> None:
    p.add_argument("--simplify", metavar="DISTANCE", help="simplify the polygon outlines to this tolerance, in pixels "
                   "(1px) or metres (15m); neighbours keep sharing their boundaries (no gaps, no overlaps)")


def _clean_parser(sub) -> None:
    cl = sub.add_parser("clean", help="clean a classified map to a minimum mapping unit",
                        description="Patches (connected pixels of one class) smaller than the minimum mapping unit "
                        "merge into their largest neighbour (GDAL's sieve); no-data stays no-data and never grows; "
                        "the colour table, class names, overviews and .qml are kept. Memory follows the number of "
                        "patches, not the map's size.")
    cl.add_argument("map", help="classified raster (e.g. from `stars segment`, or a mosaic .vrt)")
    cl.add_argument("output", help="cleaned GeoTIFF to write")
    _mmu_arguments(cl, "the map")


def cmd_clean(args) -> int:
    from .product.mmu import clean_map

    mmu = _mmu(args)
    if mmu is None:
        raise InputError("give the minimum mapping unit: --mmu AREA (e.g. 0.5ha) or --mmu-pixels N")
    result = clean_map(args.map, args.output, mmu, args.connectivity, cancel=STOP, log=print)
    print(f"wrote {args.output} ({result['changed']:,} pixels changed class)")
    return 0


def _evaluate_and_info_parsers(sub) -> None:
    ev = sub.add_parser("evaluate", help="accuracy of a classified raster against reference labels")
    ev.add_argument("prediction", help="classified raster (e.g. from `stars segment`)")
    ev.add_argument("labels", help="reference label raster (read on the prediction grid)")
    ev.add_argument("--class-table", help="CSV/JSON class table (default: the one stored in the prediction)")
    ev.add_argument("--ignore-value", type=int, action="append", default=[],
                    help="label value to leave out (e.g. 0 'no data'); repeatable")
    _report_arguments(ev, "")

    info = sub.add_parser("info", help="print what a model file holds")
    info.add_argument("model")
    info.add_argument("--json", action="store_true", help="machine-readable output")



def _threads(text: str) -> int | str:
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"--threads must be a positive number or auto, got {text!r}")
    return int(text)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated step numbers like 100,500, got {text!r}") from None


def _chip_folder_arguments(g, root_flag: bool = True) -> None:
    from .chips import ChipFolder

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


def _chip_folder(args):
    from .chips import ChipFolder

    return ChipFolder(args.chips, args.m1_dir, args.m2_dir, args.labels_dir, args.m1_suffix, args.m2_suffix,
                      args.labels_suffix)


def _scenes(args):
    from .data import SceneSpec

    if args.chips:
        if args.m1 or args.m2 or args.labels or args.scenes:
            raise InputError("give scenes (--m1/--m2/--labels or --scenes) or a chip folder (--chips), not both")
        return _chip_folder(args).scenes()
    from .data import read_scene_table

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

        from .checkpoint import read_resume

        saved = read_resume(args.resume)[0].train
        return model_cfg, loss_cfg, dataclasses.replace(
            saved, steps=args.steps if args.steps is not None else saved.steps, device=args.device,
            amp=not args.no_amp, num_workers=args.workers), data_cfg
    cadence = {k: v for k, v in (("warmup_steps", args.warmup_steps), ("val_every", args.val_every),
                                 ("checkpoint_every", args.checkpoint_every)) if v is not None}
    train_cfg = TrainConfig.for_steps(
        args.steps if args.steps is not None else TrainConfig().steps, batch_size=args.batch_size,
        lr=args.lr if args.lr is not None else TrainConfig().lr * (LR_FACTOR if args.init_from else 1.0),
        weight_decay=args.weight_decay, grad_clip=args.grad_clip, seed=args.seed, device=args.device, amp=not args.no_amp,
        num_workers=args.workers, keep_best=args.keep_best, **cadence)
    return model_cfg, loss_cfg, train_cfg, data_cfg


def cmd_train(args) -> int:
    from .progress import progress_bar, say
    from .train import train

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


def describe(payload: dict) -> dict:
    """The human-relevant content of a model file, as plain data."""
    keep = ("model_config", "loss_config", "train_config", "classes", "modalities", "bands",
            "chip_size", "pixel_size", "crs", "summary")
    info = {k: payload.get(k) for k in keep}
    info["parameters"] = int(sum(v.numel() for v in payload["state_dict"].values() if v.is_floating_point()))
    info["resumable"] = "resume" in payload
    best = payload.get("best")
    info["best"] = None if not best else {"step": best["step"], "val_m1_miou": best["val_m1_miou"]}
    return info


def cmd_info(args) -> int:
    from .checkpoint import read_model_file

    info = describe(read_model_file(args.model))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    mc, cls, s = info["model_config"], info["classes"], info["summary"] or {}
    m1, m2 = info["modalities"]
    print(f"STARS model file {args.model}")
    shared = "" if mc["mode"] != "stars" else (
        ", shared BatchNorm statistics per modality" if mc.get("shared_norm") == "per_modality"
        else ", one mixed set of shared BatchNorm statistics (`stars recalibrate` separates them)")
    print(f"  model     {mc['mode']} / {mc['backbone']} (width {mc['encoder_width']}), "
          f"{info['parameters'] / 1e6:.1f}M parameters{shared}")
    print(f"  {m1:<9} bands {', '.join(info['bands']['m1']['names'])}")
    print(f"  {m2:<9} bands {', '.join(info['bands']['m2']['names'])}")
    print(f"  pixels    {info['pixel_size'][0]:g} x {info['pixel_size'][1]:g} ({info['crs']}), chips {info['chip_size']}")
    print(f"  trained   {s.get('steps')} of {info['train_config']['steps']} steps on {s.get('device')}"
          + (" (resumable)" if info["resumable"] else ""))
    val = s.get("validation") or {}
    print("  classes   value  name                 colour    val IoU")
    for v, n, c in zip(cls["values"], cls["names"], cls["colors"]):
        iou = val.get(f"val_m1_iou_{n}")
        print(f"            {v:>5}  {n:<20} {c}   {'' if iou is None else f'{iou:.3f}'}")
    if "val_m1_miou" in val:
        print(f"  validation mIoU {val['val_m1_miou']:.4f} from {m1} alone"
              + (f", {val['val_fused_miou']:.4f} with both" if "val_fused_miou" in val else "")
              + f" (step {val.get('step')})")
    best = info["best"]
    print(f"  weights   last of step {s.get('steps')}" + (
        f"; best of validation at step {best['step']} (mIoU {best['val_m1_miou']:.4f} from {m1} alone), used by "
        f"`stars segment` unless --weights last" if best else " (trained without --keep-best)"))
    return 0


def _extent(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InputError(f"--extent must be xmin,ymin,xmax,ymax (four numbers), got {text!r}")
    return values


def cmd_segment(args) -> int:
    from .infer import segment_area
    from .progress import progress_bar, say

    cfg = SegmentConfig(tile_size=args.tile_size, overlap=args.overlap, batch_size=args.batch_size,
                        device=args.device, amp=not args.no_amp, modality=args.modality, resample=args.resample,
                        read_threads=args.read_threads, mmu=_mmu(args), mmu_connectivity=args.connectivity,
                        runtime=args.runtime, weights=args.weights)
    if args.simplify is not None and not args.polygons:
        raise InputError("--simplify applies to the polygons: give --polygons GPKG too")
    if args.polygons:  # refused before the model runs, not after
        from .files import check_outputs
        from .product.polygons import parse_tolerance

        if args.simplify is not None:
            parse_tolerance(args.simplify)
        check_outputs({"input raster": args.input, "model file": args.model, "output": args.output,
                       "uncertainty": args.uncertainty, "confidence": args.confidence},
                      {"polygon GeoPackage": args.polygons})
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:  # created with the first tile: a refusal before any work prints one line only
            bar = progress_bar(total, "tile", what="segmenting: ", leave=False)
        bar.update(done - bar.n)

    try:
        result = segment_area(args.model, args.input, args.output, cfg, extent=_extent(args.extent),
                              extent_crs=args.extent_crs, mask=args.mask, with_m2=args.with_m2,
                         confidence=args.confidence, probabilities=args.probabilities, uncertainty=args.uncertainty,
                         progress=progress, log=lambda m: say(f"warning: {m}", file=sys.stderr), cancel=STOP,
                         info=lambda m: say(m, file=sys.stderr))
    finally:
        if bar is not None:
            bar.close()
    if args.polygons:
        from .product.polygons import polygonize

        made = polygonize(result.path, args.polygons, connectivity=args.connectivity, cancel=STOP, log=lambda m: None,
                          simplify=args.simplify)
        print(f"wrote {args.polygons}: {made['polygons']:,} polygons")
    total = max(1, sum(result.class_pixels.values()))
    print(f"wrote {result.path} ({result.width} x {result.height}, branch {result.branch}, {result.tiles} tiles, "
          f"{result.seconds:.1f} s, {result.megapixels_per_second:.2f} Mpx/s on {result.device})")
    print(result.runtime_note)
    for path in (result.confidence, result.probabilities, result.uncertainty):
        if path is not None:
            print(f"wrote {path}")
    for name, n in sorted(result.class_pixels.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<20} {100 * n / total:5.1f} %")
    if result.nodata_pixels:
        print(f"  {'(no data)':<20} {result.nodata_pixels:,} pixels")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import check_report_paths, evaluate, markdown_report, write_reports

    check_report_paths(args.prediction, args.labels, args.class_table, args.json, args.markdown, args.html, args.png)
    report = evaluate(args.prediction, args.labels, args.class_table, args.ignore_value, cancel=STOP)
    write_reports(report, args.json, args.markdown, args.html, args.png)
    print(markdown_report(report), end="")
    return 0


def cmd_recalibrate(args) -> int:
    from .recalibrate import recalibrate_file

    path = recalibrate_file(args.model, args.m1, args.m2, args.out, chips=args.chips, device=args.device,
                            seed=args.seed, log=print)
    print(f"wrote {path}")
    return 0


def cmd_demo_scene(args) -> int:
    from .demo_scene import make_demo_scene

    try:
        rows, cols = (int(v) for v in args.sheets.lower().split("x"))
    except ValueError:
        raise InputError(f"--sheets must look like 2x2, got {args.sheets!r}") from None
    paths = make_demo_scene(args.out, size=args.size, seed=args.seed, sheets=(rows, cols), pixel_size=args.pixel_size,
                            sar_noise=args.sar_noise)
    for name, path in paths.items():
        print(f"{name:<8} {path}")
    return 0


class Stop:
    """Ctrl-C and SIGTERM (sent by `timeout`, batch schedulers, a closing terminal). For commands that
    poll it (train, segment, evaluate) the first signal asks the job to stop cleanly: training writes
    a resumable model file, segmentation and evaluation leave no partial output. A second signal, or
    any signal during other commands, interrupts at once (temporary files are still removed)."""

    def __init__(self):
        self.requested = False
        self.polled = False

    def __call__(self) -> bool:
        return self.requested

    def handle(self, signum, frame) -> None:
        if self.requested or not self.polled:
            raise KeyboardInterrupt
        self.requested = True
        print(f"stars: {signal.Signals(signum).name} received, stopping cleanly (send it again to stop at once)",
              file=sys.stderr)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.handle)


STOP = Stop()


def main(argv: list[str] | None = None) -> int:
    from . import threads

    threads.prepare_environment()  # before torch is imported
    args = _parser().parse_args(argv)
    handlers = {"demo-scene": cmd_demo_scene, "train": cmd_train, "info": cmd_info, "segment": cmd_segment,
                "evaluate": cmd_evaluate, "recalibrate": cmd_recalibrate, "evaluate-chips": cmd_evaluate_chips,
                "export": cmd_export, "segment-sheets": cmd_segment_sheets, "make-sheets": cmd_make_sheets,
                "clean": cmd_clean, "polygons": cmd_polygons}
    from .weights.cli import cmd_weights

    handlers["weights"] = cmd_weights
    from .accuracy.cli import HANDLERS as accuracy

    handlers.update({name: (lambda a, run=run: run(a, STOP)) for name, run in accuracy.items()})
    STOP.__init__()
    STOP.polled = args.command in ("train", "segment", "evaluate", "evaluate-chips", "segment-sheets", "sample",
                                   "assess", "clean", "polygons")
    STOP.install()
    try:
        threads.configure(_threads(args.threads), say=lambda m: print(f"stars: {m}", file=sys.stderr))
        return handlers[args.command](args)
    except Cancelled as exc:
        print(f"stars {args.command}: {exc}", file=sys.stderr)
        return 130
    except TrainingError as exc:
        print(f"stars {args.command}: training failed: {exc}", file=sys.stderr)
        return 1
    except (StarsError, ValueError, FileNotFoundError) as exc:
        print(f"stars {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stars {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `stars weights list | head`: the reader stopped, nothing is wrong
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
