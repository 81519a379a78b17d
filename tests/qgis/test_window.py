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


LOOK = r'''
import json, os
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication
from qgis.core import QgsApplication, QgsProject
from qgis.utils import iface

def look():
    modal = QApplication.activeModalWidget()  # e.g. "Handle Unavailable Layers"
    blocking = None if modal is None else modal.windowTitle()
    if modal is not None:
        modal.reject()
    canvas, project = iface.mapCanvas(), QgsProject.instance()
    e = canvas.extent()
    layers = {}
    for layer in project.mapLayers().values():
        x = layer.extent()
        renderer = layer.renderer()
        legend = renderer.legendSymbologyItems() if hasattr(renderer, "legendSymbologyItems") else []
        layers[layer.name()] = {"extent": [x.xMinimum(), x.yMinimum(), x.xMaximum(), x.yMaximum()],
                                "renderer": renderer.type() if renderer else None,
                                "legend": [name for name, _ in legend]}
    result = {"extent": [e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()], "scale": canvas.scale(),
              "blocking": blocking, "invalid": [l.name() for l in project.mapLayers().values() if not l.isValid()],
              "messages": [f"{i.title()}: {i.text()}" for i in iface.messageBar().items()], "layers": layers}
    with open(os.path.join(os.environ["STARS_WINDOW_OUT"], "look.json"), "w") as f:
        json.dump(result, f)
    QgsApplication.exit(0)

def start():
    QTimer.singleShot(5000, look)  # set first: a dialog opened while loading runs its own event loop
    iface.addProject(os.environ["STARS_PROJECT"])  # as File > Open Project does

QTimer.singleShot(3000, start)
'''


def open_in_window(project: Path, tmp_path: Path) -> dict:
    """Open `project` in a real QGIS window (Xvfb) as a user does; what the window shows after a few
    seconds: canvas extent and scale, the message bar's items, each layer's extent and legend."""
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "window-profile"), STARS_WINDOW_OUT=str(tmp_path),
               STARS_PROJECT=str(project),
               XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", str(tmp_path)))
    env.pop("QT_QPA_PLATFORM", None)
    env.pop("PYTHONPATH", None)
    (tmp_path / "look.py").write_text(LOOK)
    proc = subprocess.run([XVFB, "-a", "-s", "-screen 0 1600x1000x24", QGIS, "--nologo", "--noversioncheck",
                           "--noplugins", "--code", str(tmp_path / "look.py")], env=env,
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    result_file = tmp_path / "look.json"
    assert result_file.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(result_file.read_text())


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
