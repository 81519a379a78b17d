"""`make demo`: the main job end to end through QGIS Processing (qgis_process, headless) on the
generated demo scene, then a QGIS project, a quick-look PNG and a summary.

Steps: install the plugin into a private QGIS profile under the output folder -> stars:demoscene ->
stars:trainstars (SAR + optical + labels, three of the four map sheets; the fourth is held out) ->
stars:segmentmissingmodality (SAR alone) -> stars:segmentmapsheets -> stars:evaluatesegmentation
(held-out sheet, and the whole scene) -> stars_demo.qgz, quicklook.png, summary.json.

The demo trains a light model (ResNet-18 at half width, 128-pixel chips) so it runs in minutes on
two CPU cores; the paper's model is ResNet-50 trained for 80,000 steps on a GPU. DEMO_STEPS (or
--steps) trains longer for a better map. Usage:
    python scripts/demo.py [--out demo_out] [--steps 400] [--size 1024] [--backbone resnet18] [--width 32]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BACKBONES = ["resnet50", "resnet34", "resnet18"]  # the order of stars:trainstars' BACKBONE enum
NOISE = ("QStandardPaths:", "<string>:1: DeprecationWarning: setapi", "----------------", "Inputs", "Results")
PARAMETER_ECHO = re.compile(r"^[A-Z][A-Z0-9_]*:\t")  # qgis_process lists inputs and results as KEY:<tab>value
# qgis_process prints progress as "0...10...20.." with no line break before the next message, so a
# line may start "20..sheet A2" or "10step 40": percentages are multiples of ten, glued to dots or text.
TICK = r"(?:100|[1-9]?0)"
PROGRESS = re.compile(rf"^(?:{TICK}?\.{{1,3}}(?={TICK}(?:\.|\D|$)|\D|$))*(?:{TICK}? - done\.|{TICK}(?=[^\s\d.]))?")


def shown(line: str) -> str:
    """What of a qgis_process output line the console shows ('' for nothing)."""
    text = PROGRESS.sub("", line.rstrip())
    if not text.strip() or text.startswith(NOISE) or PARAMETER_ECHO.match(text):
        return ""
    return text


class DemoError(RuntimeError):
    """A step failed; the message says which and where its log is."""


def qgis_process() -> str:
    binary = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    if binary is None:
        raise DemoError("qgis_process was not found: install QGIS (Debian: sudo apt install qgis python3-qgis), "
                        "or run `make setup`, which installs it")
    return binary


class Runner:
    """Runs Processing algorithms through qgis_process with a private QGIS profile, one log per step."""

    def __init__(self, out: Path, total: int):
        self.out, self.total, self.done = out, total, 0
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(out / "qgis-profile"))
        self.env.pop("PYTHONPATH", None)  # the plugin must find its packages the way a user's QGIS does
        self.seconds: dict[str, float] = {}

    def step(self, title: str, command: list[str], log_name: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total}] {title}", flush=True)
        t0 = time.perf_counter()
        log_path = self.logs / f"{log_name}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, cwd=self.out)
            for line in proc.stdout:
                log.write(line)
                text = shown(line)
                if text:
                    print(f"      {text}", flush=True)
            code = proc.wait()
        seconds = time.perf_counter() - t0
        self.seconds[log_name] = round(seconds, 1)
        if code != 0:
            raise DemoError(f"step '{title}' failed (exit code {code}); its log is {log_path}")
        print(f"      done in {seconds:.0f} s", flush=True)

    def run(self, title: str, algorithm: str, params: dict, log_name: str) -> None:
        args = []
        for key, value in params.items():
            for v in value if isinstance(value, list) else [value]:
                args.append(f"{key}={v}")
        self.step(f"{title} ({algorithm})", [qgis_process(), "run", algorithm, "--", *args], log_name)


def sheet_names(rows: int, cols: int) -> list[str]:
    """The names stars:demoscene gives its map sheets: rows A, B, ... and columns 1, 2, ..."""
    return [f"{chr(ord('A') + r)}{c + 1}" for r in range(rows) for c in range(cols)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="STARS demo: the whole job through QGIS Processing, headless")
    ap.add_argument("--out", type=Path, default=ROOT / "demo_out", help="output folder (default demo_out/)")
    ap.add_argument("--steps", type=int, default=int(os.environ.get("DEMO_STEPS", 400)),
                    help="training steps (default $DEMO_STEPS or 400; 2000 gives a better map in ~20 min)")
    ap.add_argument("--size", type=int, default=1024, help="demo scene pixels per side (default 1024, 2 m pixels)")
    ap.add_argument("--backbone", default="resnet18", choices=BACKBONES)
    ap.add_argument("--width", type=int, default=32, help="backbone width (default 32; 64 is the standard ResNet)")
    ap.add_argument("--chip-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3: training from scratch)")
    ap.add_argument("--tile-size", type=int, default=256, help="segmentation tile size (default 256)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = ap.parse_args(argv)
    try:
        return run_demo(args)
    except DemoError as exc:
        print(f"make demo: error: {exc}", file=sys.stderr)
        return 1


def run_demo(args) -> int:
    from stars_core.files import atomic_path

    runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/runtime-{os.getuid()}")
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ.update(QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(runtime))  # headless QGIS, here and below
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    runner = Runner(out, total=8)
    profile = out / "qgis-profile"
    plugin_zip = out / "stars_qgis.zip"
    plugin_zip.unlink(missing_ok=True)  # `install` packages the current sources when the ZIP is absent
    runner.step("Install the STARS plugin into a private QGIS profile",
                [sys.executable, str(ROOT / "scripts" / "plugin.py"), "install", "--zip", str(plugin_zip)], "install")

    scene = out / "scene"
    rows = cols = 2
    runner.run("Create the demo scene", "stars:demoscene",
               {"SIZE": args.size, "SHEETS": f"{rows}x{cols}", "OUTPUT_FOLDER": scene}, "demoscene")
    held_out = sheet_names(rows, cols)[-1]
    sheets = scene / "sheets.gpkg"
    model = out / "model.stars"
    diagnostics = out / "diagnostics"
    runner.run(f"Train STARS on SAR + optical + labels, sheet {held_out} held out", "stars:trainstars", {
        "M1": [scene / "sar.tif"], "M2": [scene / "optical.tif"], "LABELS": [scene / "labels.tif"],
        "CLASS_TABLE": scene / "classes.csv", "IGNORE_VALUES": "0",
        "AOI": f"{sheets}|layername=sheets|subset=\"name\" <> '{held_out}'",
        "OUTPUT": model, "STEPS": args.steps, "BATCH_SIZE": args.batch_size, "CHIP_SIZE": args.chip_size,
        "LR": args.lr, "BACKBONE": BACKBONES.index(args.backbone), "ENCODER_WIDTH": args.width,
        "DEVICE": ["auto", "cpu", "cuda"].index(args.device), "DIAGNOSTICS": diagnostics,
    }, "train")
    seg = {"TILE_SIZE": args.tile_size, "DEVICE": ["auto", "cpu", "cuda"].index(args.device)}
    landcover, confidence = out / "landcover.tif", out / "confidence.tif"
    runner.run("Segment with missing modality: SAR alone", "stars:segmentmissingmodality", {
        "INPUT": scene / "sar.tif", "MODEL": model, "OUTPUT": landcover, "CONFIDENCE": confidence, **seg,
    }, "segment")
    sheet_dir = out / "sheets"
    runner.run("Segment map sheets", "stars:segmentmapsheets", {
        "SHEETS": sheets, "NAME_FIELD": "name", "INPUT": scene / "sar.tif", "MODEL": model,
        "SKIP_EXISTING": "false", "OUTPUT_FOLDER": sheet_dir, **seg,
    }, "sheets")
    evaluation = out / "evaluation"
    evaluation.mkdir(exist_ok=True)
    reports = {}
    for key, prediction, what in (("held_out", sheet_dir / f"{held_out}.tif", f"held-out sheet {held_out}"),
                                  ("whole_scene", landcover, "whole scene (mostly seen in training)")):
        reports[key] = evaluation / f"{key}.html", evaluation / f"{key}.json"
        runner.run(f"Evaluate the SAR-only map, {what}", "stars:evaluatesegmentation", {
            "PREDICTION": prediction, "LABELS": scene / "labels.tif", "IGNORE_VALUES": "0",
            "OUTPUT_HTML": reports[key][0], "OUTPUT_JSON": reports[key][1],
        }, f"evaluate_{key}")

    runner.done += 1
    print(f"[{runner.done}/{runner.total}] QGIS project and quick-look", flush=True)
    metrics = {key: json.loads(paths[1].read_text()) for key, paths in reports.items()}
    project, quick = write_outputs(out, scene, model, landcover, confidence, sheet_dir, diagnostics, held_out,
                                   metrics["held_out"])
    summary = {
        "miou_sar_only_held_out": metrics["held_out"]["miou"],
        "oa_sar_only_held_out": metrics["held_out"]["oa"],
        "miou_sar_only_whole_scene": metrics["whole_scene"]["miou"],
        "held_out_sheet": held_out,
        "model": {"backbone": args.backbone, "width": args.width, "steps": args.steps, "chip_size": args.chip_size},
        "seconds": {**runner.seconds, "total": round(time.perf_counter() - t_start, 1)},
        "files": {
            "project": project, "quicklook": quick, "model": model, "landcover": landcover,
            "confidence": confidence, "mosaic": sheet_dir / "mosaic.vrt", "sheet_summary": sheet_dir / "summary.csv",
            "report_held_out": reports["held_out"][0], "report_whole_scene": reports["whole_scene"][0],
            "metrics_held_out": reports["held_out"][1], "diagnostics": diagnostics, "scene": scene,
            "logs": runner.logs, "qgis_profile": profile,
        },
    }
    summary["files"] = {k: str(v) for k, v in summary["files"].items()}
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    print_summary(summary, metrics["held_out"], out)
    return 0


def write_outputs(out, scene, model, landcover, confidence, sheet_dir, diagnostics, held_out, held_metrics):
    """The QGIS project and the quick-look PNG."""
    from stars_core.checkpoint import read_model_file
    from stars_core.classes import ClassTable
    from stars_core.quicklook import quicklook
    from stars_qgis.project import LayerSpec, write_project

    classes = ClassTable.from_dict(read_model_file(model)["classes"])
    project = write_project(out / "stars_demo.qgz", [
        ("STARS outputs", [
            LayerSpec("land cover from SAR alone", str(landcover)),
            LayerSpec("confidence", str(confidence), "grey:1", visible=False),
            LayerSpec("map sheets, mosaic", str(sheet_dir / "mosaic.vrt"), visible=False),
        ]),
        ("Inputs", [
            LayerSpec("map sheets", str(scene / "sheets.gpkg"), "outline"),
            LayerSpec("labels (reference)", str(scene / "labels.tif"), visible=False),
            LayerSpec("optical (training only)", str(scene / "optical.tif"), "rgb:3,2,1", visible=False),
            LayerSpec("SAR VV", str(scene / "sar.tif"), "grey:1", visible=False),
        ]),
    ], title="STARS demo")
    from osgeo import ogr

    ds = ogr.Open(str(scene / "sheets.gpkg"))
    boxes = []
    for feature in ds.GetLayer(0):
        if feature.GetField("name") == held_out:
            xmin, xmax, ymin, ymax = feature.GetGeometryRef().GetEnvelope()
            boxes.append((f"held out ({held_out}): mIoU {held_metrics['miou']:.2f}", (xmin, ymin, xmax, ymax)))
    ds = None
    quick = quicklook(scene / "sar.tif", landcover, scene / "labels.tif", classes, out / "quicklook.png",
                      optical=scene / "optical.tif", boxes=boxes,
                      title="STARS demo: land cover mapped from SAR alone (optical and labels only in training)")
    return project, quick


def print_summary(summary: dict, held: dict, out: Path) -> None:
    f = summary["files"]
    here = Path.cwd()
    rel = lambda p: os.path.relpath(p) if Path(p).is_relative_to(here) else p  # noqa: E731
    print()
    print(f"STARS demo finished in {summary['seconds']['total'] / 60:.1f} min.")
    print(f"  mIoU of the SAR-only map on the held-out sheet {summary['held_out_sheet']}: "
          f"{summary['miou_sar_only_held_out']:.3f} (OA {summary['oa_sar_only_held_out']:.3f});"
          f" whole scene: {summary['miou_sar_only_whole_scene']:.3f}")
    for name, cls in held["per_class"].items():
        if cls["iou"] is not None:
            print(f"      {name:<14} IoU {cls['iou']:.3f}")
    print("  files:")
    for key, label in (("project", "QGIS project"), ("quicklook", "quick-look PNG"), ("landcover", "land-cover map"),
                       ("confidence", "confidence"), ("mosaic", "map-sheet mosaic"),
                       ("report_held_out", "accuracy report"), ("model", "model file"),
                       ("diagnostics", "training diagnostics"), ("scene", "demo scene"), ("logs", "step logs")):
        print(f"    {label:<21} {rel(f[key])}")
    print(f"  summary as JSON: {rel(out / 'summary.json')}")
    print(f"  open the project: qgis {rel(f['project'])}")
    print(f"  a longer, better run: DEMO_STEPS=2000 make demo")


if __name__ == "__main__":
    sys.exit(main())
