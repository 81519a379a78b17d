"""A real QGIS window under Xvfb: the plugin loads, its menu entry and provider exist, and the Train
and Segment dialogs open (screenshots in the test's folder). Skipped where Xvfb is missing."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
XVFB, QGIS = shutil.which("xvfb-run"), shutil.which("qgis")

SCRIPT = r'''
import json, os
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication
from qgis.core import QgsApplication
from qgis.utils import iface
import processing

out = os.environ["STARS_WINDOW_OUT"]

def shoot():
    result = {"provider": QgsApplication.processingRegistry().providerById("stars") is not None}
    result["menu"] = [a.text() for a in iface.pluginMenu().actions()
                      for a in ([a] + (a.menu().actions() if a.menu() else [])) if "STARS" in a.text()]
    for alg in ("stars:trainstars", "stars:segmentmissingmodality"):
        dialog = processing.createAlgorithmDialog(alg)
        dialog.resize(900, 700)
        dialog.show()
        for _ in range(20):
            QApplication.processEvents()
        path = os.path.join(out, alg.split(":")[1] + ".png")
        result[alg] = bool(dialog.grab().save(path)) and os.path.getsize(path) > 10000
        dialog.close()
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f)
    QgsApplication.exit(0)

QTimer.singleShot(6000, shoot)
'''


@pytest.mark.skipif(XVFB is None or QGIS is None, reason="xvfb-run or the QGIS desktop is not installed")
def test_the_dialogs_open_in_a_real_qgis_window(tmp_path):
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"), STARS_WINDOW_OUT=str(tmp_path),
               XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", str(tmp_path)))
    env.pop("QT_QPA_PLATFORM", None)  # a real window, on Xvfb's display
    env.pop("PYTHONPATH", None)
    zip_path = tmp_path / "stars_qgis.zip"
    for args in (["package", "--out", str(zip_path)], ["install", "--zip", str(zip_path)]):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "plugin.py"), *args], env=env, check=True,
                       capture_output=True)
    (tmp_path / "shoot.py").write_text(SCRIPT)
    proc = subprocess.run([XVFB, "-a", "-s", "-screen 0 1600x1000x24", QGIS, "--nologo", "--noversioncheck",
                           "--code", str(tmp_path / "shoot.py")], env=env, capture_output=True, text=True,
                          timeout=240, cwd=tmp_path)
    result_file = tmp_path / "result.json"
    assert result_file.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(result_file.read_text())
    assert result["provider"] and result["stars:trainstars"] and result["stars:segmentmissingmodality"], result
    assert any("install dependencies" in t for t in result["menu"]), result["menu"]
    keep = os.environ.get("STARS_KEEP_SCREENSHOTS")
    if keep:
        for png in tmp_path.glob("*.png"):
            shutil.copy(png, keep)
