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
                               "Segment map sheets", "Evaluate", "Evaluate", "QGIS project"], start=1):
        assert f"[{n}/8] {title}" in proc.stdout

    summary = json.loads((out / "summary.json").read_text())
    for name, path in summary["files"].items():
        assert Path(path).exists(), f"summary names {name} = {path}, which is missing"
    held = json.loads(Path(summary["files"]["metrics_held_out"]).read_text())
    assert summary["miou_sar_only_held_out"] == held["miou"]
    assert f"held-out sheet B2: {held['miou']:.3f}" in proc.stdout
    assert "stars_demo.qgz" in proc.stdout and "quicklook.png" in proc.stdout

    with rasterio.open(summary["files"]["landcover"]) as ds, rasterio.open(out / "scene" / "sar.tif") as sar:
        assert ds.transform == sar.transform and ds.crs == sar.crs
    assert imread(summary["files"]["quicklook"]).shape[1] > 800
    assert sorted(p.name for p in (out / "sheets").glob("*.tif")) == ["A1.tif", "A2.tif", "B1.tif", "B2.tif"]
    assert (out / "diagnostics" / "similarity_init.png").is_file()
    with zipfile.ZipFile(summary["files"]["project"]) as z:
        qgs = z.read(next(n for n in z.namelist() if n.endswith(".qgs"))).decode()
    for source in ("landcover.tif", "confidence.tif", "mosaic.vrt", "sar.tif", "optical.tif", "labels.tif",
                   "sheets.gpkg"):
        assert source in qgs
    assert "paletted" in qgs and "multibandcolor" in qgs  # class colours and the RGB composite are saved
    assert "<limits>CumulativeCut</limits>" in qgs  # the 2-98 % stretch is what the project keeps
