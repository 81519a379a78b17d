"""`stars segment`, `stars segment-sheets` and `stars make-sheets`."""
from __future__ import annotations

import argparse
import sys

from ..errors import InputError
from .common import cuda_available, engine_arguments, mmu_arguments, segment_config, simplify_argument
from .stop import STOP


EPILOG_SEGMENT = """examples:
  stars segment demo/model.stars demo/sar.tif demo/landcover.tif --confidence demo/confidence.tif
  with the optical image too:   stars segment demo/model.stars demo/sar.tif out.tif --with-m2 demo/optical.tif
  optical only (DSM+optical):   stars segment model.stars optical.tif out.tif --modality 2
"""


def _segment_parser(sub) -> None:
    seg = sub.add_parser("segment", help="classify a raster with a trained model (SAR alone by default)",
                         epilog=EPILOG_SEGMENT, formatter_class=argparse.RawDescriptionHelpFormatter)
    seg.add_argument("model", help="model file written by `stars train` (.stars), or exported by `stars export` "
                     "(.onnx: runs with ONNX Runtime, no PyTorch needed)")
    seg.add_argument("input", help="raster of the available modality (SAR/DSM unless --modality 2)")
    seg.add_argument("output", help="classified GeoTIFF to write")
    engine_arguments(seg)
    seg.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    seg.add_argument("--confidence", metavar="PATH", help="also write the chosen class's probability")
    seg.add_argument("--probabilities", metavar="PATH", help="also write one probability band per class")
    seg.add_argument("--uncertainty", metavar="PATH", help="also write normalised entropy and margin (top-1 minus "
                     "top-2 probability), from the same pass")
    seg.add_argument("--polygons", metavar="GPKG", help="also write the class map as polygons (after --mmu), with "
                     "class names and areas")
    simplify_argument(seg)
    seg.add_argument("--with-m2", metavar="PATH", help="optical raster of the same area: use both (fused branch)")
    seg.add_argument("--modality", type=int, choices=[1, 2], default=1,
                     help="which modality INPUT is: 1 = SAR/DSM (default), 2 = optical")
    seg.add_argument("--resample", action="store_true",
                     help="segment at the model's pixel size when the input's differs (result on the input grid)")
    mmu_arguments(seg)
    seg.add_argument("--extent", metavar="XMIN,YMIN,XMAX,YMAX", help="segment only this extent (in the input's CRS "
                     "unless --extent-crs); the output covers it on the input's pixel grid")
    seg.add_argument("--extent-crs", metavar="CRS", help="CRS of --extent (e.g. EPSG:4326)")
    seg.add_argument("--mask", metavar="POLYGONS", help="polygon file: pixels outside its polygons are no data")


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
    from ..segmentation.infer import segment_area
    from ..progress import progress_bar, say

    cfg = segment_config(args)
    if args.simplify is not None and not args.polygons:
        raise InputError("--simplify applies to the polygons: give --polygons GPKG too")
    if args.polygons:  # refused before the model runs, not after
        from ..files import check_outputs
        from ..product.polygons import parse_tolerance

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
        from ..product.polygons import polygonize

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


def _sheets_parsers(sub) -> None:
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
    ss.add_argument("--only", metavar="NAME[,NAME...]", help="segment only these sheets (by the name field's "
                    "values, or sheet numbers: 1 is the file's first sheet); the mosaic covers every sheet done so far")
    ss.add_argument("--no-skip-existing", action="store_true", help="segment sheets already done again")
    ss.add_argument("--dry-run", action="store_true", help="print which process takes which sheets and stop")
    ss.add_argument("--processes", type=int, help="with --dry-run: the number of processes to plan for "
                    "(default: torchrun's WORLD_SIZE, else 1)")
    engine_arguments(ss, "auto, cpu, cuda or cuda:N (under torchrun, auto and cuda take the process's local GPU)")
    mmu_arguments(ss, "the mosaic (as one raster, so no seams; written as mosaic_mmu.tif)")
    ss.add_argument("--modality", type=int, choices=[1, 2], default=1,
                    help="which modality the sheets' raster is: 1 = SAR/DSM (default), 2 = optical")
    ms = sub.add_parser("make-sheets", help="write a grid of map sheets covering a raster (GeoPackage)")
    ms.add_argument("input", help="raster to cover")
    ms.add_argument("--size", type=int, required=True, help="sheet side in pixels")
    ms.add_argument("--overlap", type=int, default=0, help="pixels added on each side of a sheet (default 0)")
    ms.add_argument("--out", required=True, help="GeoPackage to write (layer 'sheets', field 'name')")


def cmd_make_sheets(args) -> int:
    from ..segmentation.sheets import make_sheet_grid

    n = make_sheet_grid(args.input, args.size, args.out, args.overlap)
    print(f"wrote {n} sheets to {args.out}")
    return 0


def cmd_segment_sheets(args) -> int:
    import os

    from ..segmentation.sheets import Share, plan_sheets, read_sheets, segment_sheets, select_sheets

    if args.processes is not None and (args.processes < 1 or not args.dry_run):
        raise InputError(f"--processes must be 1 or more and goes with --dry-run (a real run takes its processes "
                         f"from torchrun --nproc-per-node), got {args.processes}")
    sheets = read_sheets(args.sheets, args.name_field)
    if args.only:
        sheets = select_sheets(sheets, args.only.split(","))
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
        if device in ("auto", "cuda") and cuda_available():
            device = f"cuda:{local}"
    cfg = segment_config(args, device=device)
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


def add_parsers(sub) -> None:
    _segment_parser(sub)
    _sheets_parsers(sub)


HANDLERS = {"segment": cmd_segment, "segment-sheets": cmd_segment_sheets, "make-sheets": cmd_make_sheets}
