"""What is done to a model file: `stars info`, `stars export` and `stars recalibrate`."""
from __future__ import annotations

import json


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
    ex.add_argument("--tile-size", type=int, help="the graph's input size, fixed (Deepness reads it and feeds tiles of "
                    "that size; `stars segment` with the .onnx uses it too); a multiple of 32, default: the "
                    "training chip size")
    ex.add_argument("--int8", action="store_true", help="static int8 quantisation (needs --calibrate)")
    ex.add_argument("--calibrate", metavar="RASTER", help="raster of the branch's input to calibrate int8 on")
    ex.add_argument("--weights", choices=["best", "last"], default="best", help="a model trained with "
                     "--keep-best: its best validation weights (default) or its last")


def cmd_export(args) -> int:
    from ..engines.onnx_export import export_onnx

    export_onnx(args.model, args.output, args.branch, args.tile_size, args.int8, args.calibrate, log=print,
                weights=args.weights)
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
    rc.add_argument("--seed", type=int, default=0, help="random seed of the chips read (default 0)")


def cmd_recalibrate(args) -> int:
    from ..training.recalibrate import recalibrate_file

    path = recalibrate_file(args.model, args.m1, args.m2, args.out, chips=args.chips, device=args.device,
                            seed=args.seed, log=print)
    print(f"wrote {path}")
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
    info["distilled_from"] = payload.get("distilled_from")
    info["init_from"] = payload.get("init_from")
    return info


def _fine_tuned(source: dict) -> str:
    """The line saying which model a fine-tuning run started from (the file's `init_from`)."""
    step = f" of step {source['step']}" if source.get("step") is not None else ""
    classes = "; ".join(f"{what}: {', '.join(source[key])}" for what, key in
                        (("classes kept", "classes_kept"), ("new", "classes_new"), ("dropped", "classes_dropped"))
                        if source.get(key))
    return (f"  started   fine-tuned from {source['file']} ({source.get('weights', 'last')} weights{step}, SHA-256 "
            f"{source['sha256'][:12]}...), frozen: {source.get('freeze', 'none')}" + (f"; {classes}" if classes else ""))


def cmd_info(args) -> int:
    from ..checkpoint import read_model_file

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
    if info["init_from"]:
        print(_fine_tuned(info["init_from"]))
    teacher = info["distilled_from"]
    if teacher:
        scores = "" if teacher.get("student_miou") is None else (
            f"; mIoU {teacher['student_miou']:.3f} against the teacher's {teacher['teacher_miou']:.3f} on labelled chips")
        print(f"  teacher   distilled from {teacher['file']} ({teacher['backbone']} {teacher['mode']}, SHA-256 "
              f"{teacher['sha256'][:12]}...), T = {teacher['temperature']:g}, {teacher['steps']} steps; agrees with "
              f"it on {100 * teacher['agreement']:.2f} % of the pixels of its check chips{scores}")
    return 0


def _info_parser(sub) -> None:
    info = sub.add_parser("info", help="print what a model file holds")
    info.add_argument("model", help="model file (.stars)")
    info.add_argument("--json", action="store_true", help="machine-readable output")


def add_parsers(sub) -> None:
    _info_parser(sub)
    _recalibrate_parser(sub)
    _export_parser(sub)


HANDLERS = {"info": cmd_info, "recalibrate": cmd_recalibrate, "export": cmd_export}
