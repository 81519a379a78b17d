"""A real QGIS window under Xvfb (`open_in_window`): what a user sees when opening a project with
the plugin installed. `tests/qgis/test_demo.py` opens the demo's project with it."""
import json
import os
import shutil
import subprocess
from pathlib import Path

XVFB, QGIS = shutil.which("xvfb-run"), shutil.which("qgis")

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
    out = os.environ["STARS_WINDOW_OUT"]
    result["provider"] = QgsApplication.processingRegistry().providerById("stars") is not None
    result["menu"] = [a.text() for a in iface.pluginMenu().actions()
                      for a in ([a] + (a.menu().actions() if a.menu() else [])) if "STARS" in a.text()]
    if result["provider"]:
        import processing

        for alg in ("stars:trainstars", "stars:segmentmissingmodality", "stars:createaccuracysample"):
            dialog = processing.createAlgorithmDialog(alg)
            dialog.resize(900, 700)
            dialog.show()
            for _ in range(20):
                QApplication.processEvents()
            path = os.path.join(out, alg.split(":")[1] + ".png")
            result[alg] = bool(dialog.grab().save(path)) and os.path.getsize(path) > 10000
            dialog.close()
    with open(os.path.join(out, "look.json"), "w") as f:
        json.dump(result, f)
    QgsApplication.exit(0)

looked, started = [], []

def look_once():
    if not looked:
        looked.append(True)
        look()

def settled():  # the canvas has drawn the project: look a moment later, unless it draws again
    canvas = iface.mapCanvas()
    QTimer.singleShot(500, lambda: None if canvas.isDrawing() else look_once())

def start():
    if started:
        return
    started.append(True)
    QTimer.singleShot(5000, look_once)  # set first: a dialog opened while loading runs its own event loop
    iface.addProject(os.environ["STARS_PROJECT"])  # as File > Open Project does
    iface.mapCanvas().mapCanvasRefreshed.connect(settled)

# once QGIS has finished starting (this file runs before its last step), else after 3 s
iface.initializationCompleted.connect(lambda: QTimer.singleShot(0, start))
QTimer.singleShot(3000, start)
'''


def open_in_window(project: Path, tmp_path: Path, profile: Path) -> dict:
    """Open `project` in a real QGIS window (Xvfb) as a user does, with the QGIS profile `profile`;
    what the window shows after a few seconds: canvas extent and scale, the message bar's items,
    each layer's extent and legend, and, where the plugin is enabled in the profile, its provider,
    menu entry and three dialogs (screenshots in `tmp_path`)."""
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(profile), STARS_WINDOW_OUT=str(tmp_path),
               STARS_PROJECT=str(project),
               XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", str(tmp_path)))
    env.pop("QT_QPA_PLATFORM", None)
    env.pop("PYTHONPATH", None)
    (tmp_path / "look.py").write_text(LOOK)
    proc = subprocess.run([XVFB, "-a", "-s", "-screen 0 1600x1000x24", QGIS, "--nologo", "--noversioncheck",
                           "--code", str(tmp_path / "look.py")], env=env,
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    result_file = tmp_path / "look.json"
    assert result_file.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(result_file.read_text())


