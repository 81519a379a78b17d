"""The packaged plugin, installed into a temporary QGIS profile, runs from `qgis_process`."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

ROOT = Path(__file__).resolve().parents[2]
QGIS_PROCESS = shutil.which("qgis_process.bin")


@pytest.mark.skipif(QGIS_PROCESS is None, reason="qgis_process.bin (Debian package 'qgis') is not installed")
def test_packaged_plugin_segments_through_qgis_process(demo_scene, trained_model, tmp_path):
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"), QT_QPA_PLATFORM="offscreen")
    env.pop("PYTHONPATH", None)
    zip_path = tmp_path / "stars_qgis.zip"
    for args in (["package", "--out", str(zip_path)], ["install", "--zip", str(zip_path)]):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "plugin.py"), *args], env=env, check=True,
                       capture_output=True)
    installed = tmp_path / "profile" / "profiles" / "default" / "python" / "plugins" / "stars_qgis"
    assert (installed / "stars_core" / "segmentation" / "infer.py").is_file() and (installed / "metadata.txt").is_file()
    out = tmp_path / "map.tif"
    proc = subprocess.run(
        [QGIS_PROCESS, "run", "stars:segmentmissingmodality", "--", f"INPUT={demo_scene['sar']}",
         f"MODEL={trained_model}", f"OUTPUT={out}", "TILE_SIZE=128", "DEVICE=1", "RUNTIME=1"],  # PyTorch
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with rasterio.open(out) as ds, rasterio.open(demo_scene["sar"]) as src:
        assert ds.transform == src.transform and ds.crs == src.crs
        data = ds.read(1)
        assert ds.tags(1).get("STARS_CLASSES")
    assert 0.5 < (data != 255).mean() and len(np.unique(data)) > 2

    # Export to ONNX, then segment with the .onnx file in the same profile
    onnx = tmp_path / "model.onnx"
    proc = subprocess.run([QGIS_PROCESS, "run", "stars:exportonnx", "--", f"MODEL={trained_model}", f"OUTPUT={onnx}"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0 and onnx.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    proc = subprocess.run(
        [QGIS_PROCESS, "run", "stars:segmentmissingmodality", "--", f"INPUT={demo_scene['sar']}",
         f"MODEL={onnx}", f"OUTPUT={tmp_path / 'onnx.tif'}", "TILE_SIZE=128", "DEVICE=1"],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with rasterio.open(tmp_path / "onnx.tif") as ds:
        assert (ds.read(1) == data).mean() >= 0.999
