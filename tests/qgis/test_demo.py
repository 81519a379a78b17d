"""`make demo` shortened (tiny backbone, a few steps, a small scene): every step through qgis_process,
then the project, the quick-look and a summary that matches the files."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import rasterio
from matplotlib.image import imread

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("qgis_process.bin") is None and shutil.which("qgis_process") is None,
                    reason="qgis_process (Debian package 'qgis') is not installed")
def test_shortened_demo_runs_end_to_end_through_qgis_process(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--out", str(out), "--size", "256", "--steps", "3",
         "--width", "16", "--chip-size", "64", "--batch-size", "2", "--tile-size", "128", "--device", "cpu"],
        env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for n, title in enumerate(["Install", "Create the demo scene", "Train STARS", "Segment with missing modality",
                               "Segment map sheets", "Evaluate", "Evaluate", "Create accuracy sample", "Label the points",
                               "Estimate accuracy and area", "QGIS project"], start=1):
        assert f"[{n}/11] {title}" in proc.stdout
    assert "class areas, ha:" in proc.stdout

    summary = json.loads((out / "summary.json").read_text())
    for name, path in summary["files"].items():
        assert Path(path).exists(), f"summary names {name} = {path}, which is missing"
    held = json.loads(Path(summary["files"]["metrics_held_out"]).read_text())
    areas = summary["areas_held_out"]
    assert areas["labelled_points"] > 0 and 0 < areas["overall_accuracy"] <= 1
    assert sum(c["true_ha"] for c in areas["classes"]) <= sum(c["mapped_ha"] for c in areas["classes"]) + 1e-6
    assert summary["miou_sar_only_held_out"] == held["miou"]
    assert f"held-out sheet B2: {held['miou']:.3f}" in proc.stdout
    assert "stars_demo.qgz" in proc.stdout and "quicklook.png" in proc.stdout

    with rasterio.open(summary["files"]["landcover"]) as ds, rasterio.open(out / "scene" / "sar.tif") as sar:
        assert ds.transform == sar.transform and ds.crs == sar.crs
    assert imread(summary["files"]["quicklook"]).shape[1] > 800
    assert sorted(p.name for p in (out / "sheets").glob("*.tif")) == ["A1.tif", "A2.tif", "B1.tif", "B2.tif"]
    assert (out / "diagnostics" / "similarity_init.png").is_file()
    with zipfile.ZipFile(summary["files"]["project"]) as z:
        assert z.namelist() == ["stars_demo.qgs"]  # named after the project, as QGIS names it
        qgs = z.read("stars_demo.qgs").decode()
    assert "<DefaultViewExtent" in qgs and 'fontFamily=""' in qgs
    assert (out / "sheets" / "mosaic.qml").is_file()
    for source in ("landcover.tif", "confidence.tif", "mosaic.vrt", "sar.tif", "optical.tif", "labels.tif",
                   "sheets.gpkg"):
        assert source in qgs
    assert "paletted" in qgs and "multibandcolor" in qgs  # class colours and the RGB composite are saved
    assert "<limits>CumulativeCut</limits>" in qgs  # the 2-98 % stretch is what the project keeps

    # The first look, in a real QGIS window: zoomed to the outputs, no warning bar, the mosaic's
    # legend lists the classes by name (not the VRT's 256-entry colour table).
    # With the demo's own profile, where the plugin is installed: its provider, menu entry and dialogs.
    from tests.qgis.window import QGIS, XVFB, open_in_window

    if XVFB is None or QGIS is None:
        return
    seen = open_in_window(Path(summary["files"]["project"]), tmp_path, Path(summary["files"]["qgis_profile"]))
    assert seen["provider"] and any("install dependencies" in t for t in seen["menu"]), seen.get("menu")
    assert seen["stars:trainstars"] and seen["stars:segmentmissingmodality"] and seen["stars:createaccuracysample"]
    assert seen["blocking"] is None and seen["invalid"] == [], (seen["blocking"], seen["invalid"])
    assert seen["messages"] == [], seen["messages"]
    land = seen["layers"]["land cover from SAR alone"]["extent"]
    x0, y0, x1, y1 = seen["extent"]
    assert x0 <= land[0] + 1 and x1 >= land[2] - 1 and y0 <= land[1] + 1 and y1 >= land[3] - 1, (seen["extent"], land)
    assert (x1 - x0) < 3 * (land[2] - land[0]) + 1 or (y1 - y0) < 3 * (land[3] - land[1]) + 1  # not the whole world
    import csv

    names = [row["name"] for row in csv.DictReader(open(out / "scene" / "classes.csv"))]
    mosaic = seen["layers"]["map sheets, mosaic"]
    assert mosaic["renderer"] == "paletted" and mosaic["legend"] == names, mosaic
    assert seen["layers"]["labels (reference)"]["legend"] == names
