"""`make demo`: the main job end to end through QGIS Processing (qgis_process, headless) on the
generated demo scene, then a QGIS project, a quick-look PNG and a summary.

Steps: install the plugin into a private QGIS profile under the output folder -> stars:demoscene ->
stars:trainstars (SAR + optical + labels, three of the four map sheets; the fourth is held out) ->
stars:segmentmissingmodality (SAR alone) -> stars:segmentmapsheets -> stars:evaluatesegmentation
(held-out sheet, and the whole scene) -> stars:createaccuracysample on the held-out sheet's map ->
the points labelled from the demo's reference raster (standing in for an interpreter, who would
label them from imagery or the field) -> stars:estimateaccuracyarea -> stars_demo.qgz,
quicklook.png, summary.json.

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
    runner = Runner(out, total=11)
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
    reports = evaluate_maps(runner, out, scene, sheet_dir / f"{held_out}.tif", held_out, landcover)
    areas = estimate_areas(runner, out, scene, sheet_dir / f"{held_out}.tif", held_out)

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
        "areas_held_out": areas,
        "model": {"backbone": args.backbone, "width": args.width, "steps": args.steps, "chip_size": args.chip_size},
        "seconds": {**runner.seconds, "total": round(time.perf_counter() - t_start, 1)},
        "files": {
            "project": project, "quicklook": quick, "model": model, "landcover": landcover,
            "confidence": confidence, "mosaic": sheet_dir / "mosaic.vrt", "sheet_summary": sheet_dir / "summary.csv",
            "report_held_out": reports["held_out"][0], "report_whole_scene": reports["whole_scene"][0],
            "metrics_held_out": reports["held_out"][1], "diagnostics": diagnostics, "scene": scene,
            "sample": out / "accuracy" / "sample.gpkg", "area_report": out / "accuracy" / "report.html",
            "logs": runner.logs, "qgis_profile": profile,
        },
    }
    summary["files"] = {k: str(v) for k, v in summary["files"].items()}
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    print_summary(summary, metrics["held_out"], out)
    return 0


def evaluate_maps(runner, out, scene, held_out_map, held_out, landcover) -> dict:
    """The SAR-only map of the held-out sheet and of the whole scene against the labels: {key: (html, json)}."""
    evaluation = out / "evaluation"
    evaluation.mkdir(exist_ok=True)
    reports = {}
    for key, prediction, what in (("held_out", held_out_map, f"held-out sheet {held_out}"),
                                  ("whole_scene", landcover, "whole scene (mostly seen in training)")):
        reports[key] = evaluation / f"{key}.html", evaluation / f"{key}.json"
        runner.run(f"Evaluate the SAR-only map, {what}", "stars:evaluatesegmentation", {
            "PREDICTION": prediction, "LABELS": scene / "labels.tif", "IGNORE_VALUES": "0",
            "OUTPUT_HTML": reports[key][0], "OUTPUT_JSON": reports[key][1],
        }, f"evaluate_{key}")
    return reports


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


def where_reference_exists(sheet_map: Path, labels: Path, out: Path) -> Path:
    """The sheet's map where the demo's reference exists (the scene's border has none): the area the
    sample assesses and the true areas are counted over. A real project's interpreter labels every
    point from imagery; here a class mapped only on the border would have no point to label."""
    import rasterio
    from rasterio.windows import from_bounds

    from stars_core.classmap import stored_classes, style_class_map

    with rasterio.open(sheet_map) as m, rasterio.open(labels) as lab:
        window = from_bounds(*m.bounds, transform=lab.transform).round_offsets().round_lengths()
        data = m.read(1)
        data[lab.read(1, window=window) == 0] = m.nodata
        classes, profile = stored_classes(m), m.profile
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data, 1)
    style_class_map(out, classes)
    return out


def estimate_areas(runner: Runner, out: Path, scene: Path, sheet_map: Path, sheet: str) -> dict:
    """Sample the held-out sheet's SAR-only map, label the points from the demo's reference raster
    (the interpreter's part: in a real project someone labels them from imagery or in the field),
    estimate accuracy and areas, and set the estimates beside the true areas the demo knows."""
    import numpy as np
    import rasterio
    from osgeo import ogr

    folder = out / "accuracy"
    folder.mkdir(exist_ok=True)
    sample, report = folder / "sample.gpkg", folder / "report.json"
    sheet_map = where_reference_exists(sheet_map, scene / "labels.tif", folder / f"{sheet}_assessed.tif")
    runner.run(f"Create accuracy sample on the map of sheet {sheet}", "stars:createaccuracysample", {
        "INPUT": sheet_map, "TARGET_SE": 0.02, "MIN_PER_CLASS": 30, "OUTPUT": sample}, "sample")
    runner.done += 1
    print(f"[{runner.done}/{runner.total}] Label the points from the demo's reference raster (an interpreter's "
          f"work in a real project)", flush=True)
    ds = ogr.Open(str(sample), 1)
    layer = ds.GetLayerByName("sample")
    with rasterio.open(scene / "labels.tif") as lab:
        for f in layer:
            g = f.GetGeometryRef()
            row, col = lab.index(g.GetX(), g.GetY())
            value = int(lab.read(1, window=((row, row + 1), (col, col + 1)))[0, 0])
            if value != 0:  # no reference there (the scene's border): left unlabelled
                f.SetField("reference", value)
                layer.SetFeature(f)
    ds = None
    runner.run(f"Estimate accuracy and area of sheet {sheet}", "stars:estimateaccuracyarea", {
        "INPUT": sheet_map, "SAMPLE": f"{sample}|layername=sample", "OUTPUT_HTML": folder / "report.html",
        "OUTPUT_JSON": report}, "assess")
    estimates = json.loads(report.read_text())
    with rasterio.open(sheet_map) as m, rasterio.open(scene / "labels.tif") as lab:
        window = rasterio.windows.from_bounds(*m.bounds, transform=lab.transform)
        truth = lab.read(1, window=window.round_offsets().round_lengths())
        mapped = m.read(1) != m.nodata
        ha = abs(m.transform.a * m.transform.e) / 10_000
    return {"overall_accuracy": estimates["overall_accuracy"], "overall_ci95": estimates["overall_ci95"],
            "labelled_points": estimates["labelled_points"],
            "classes": [dict(c, true_ha=float(np.sum((truth == c["value"]) & mapped) * ha))
                        for c in estimates["per_class"]]}


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
    areas = summary["areas_held_out"]
    ci = f" ± {areas['overall_ci95']:.3f}" if areas["overall_ci95"] is not None else ""
    print(f"  sheet {summary['held_out_sheet']} from a stratified sample of {areas['labelled_points']} labelled points: "
          f"overall accuracy {areas['overall_accuracy']:.3f}{ci} (95 %); class areas, ha:")
    print(f"      {'class':<14} {'mapped':>9} {'estimated (95 %)':>22} {'true':>9}")
    for c in areas["classes"]:
        est = f"{c['area_ha']:.1f}" + (f" ± {c['area_ci95_ha']:.1f}" if c["area_ci95_ha"] is not None else "")
        print(f"      {c['class']:<14} {c['mapped_ha']:>9.1f} {est:>22} {c['true_ha']:>9.1f}")
    print("  files:")
    for key, label in (("project", "QGIS project"), ("quicklook", "quick-look PNG"), ("landcover", "land-cover map"),
                       ("confidence", "confidence"), ("mosaic", "map-sheet mosaic"),
                       ("report_held_out", "accuracy report"), ("area_report", "area estimates"),
                       ("sample", "accuracy sample"), ("model", "model file"),
                       ("diagnostics", "training diagnostics"), ("scene", "demo scene"), ("logs", "step logs")):
        print(f"    {label:<21} {rel(f[key])}")
    print(f"  summary as JSON: {rel(out / 'summary.json')}")
    print(f"  open the project: qgis {rel(f['project'])}")
    print(f"  a longer, better run: DEMO_STEPS=2000 make demo")


if __name__ == "__main__":
    sys.exit(main())
