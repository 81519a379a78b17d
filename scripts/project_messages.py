"""Open a QGIS project in a real QGIS window and report the messages it shows (message bar and the
font manager's download errors), for `make check-debian13`: the demo project must open offline with
no message. Run by QGIS itself:
    xvfb-run -a qgis --nologo --noversioncheck --code scripts/project_messages.py PROJECT.qgz
with STARS_MESSAGES_OUT naming the file to write (one message a line; empty: none). QGIS exits
after a few seconds.
"""
import os
import sys

from qgis.core import QgsApplication, QgsProject
from qgis.gui import QgsMessageBarItem
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface

seen = []
if hasattr(QgsApplication, "fontManager"):  # QGIS 3.28 and later download missing fonts
    QgsApplication.fontManager().fontDownloadErrorOccurred.connect(
        lambda url, identifier, error: seen.append(f"font download failed: {identifier} ({error})"))
project = next((a for a in sys.argv[1:] if a.endswith((".qgz", ".qgs"))), None)


def finish() -> None:
    for item in iface.messageBar().findChildren(QgsMessageBarItem):
        seen.append(f"message bar: {item.title()} {item.text()}".strip())
    with open(os.environ.get("STARS_MESSAGES_OUT", "project_messages.txt"), "w") as f:
        f.write("".join(f"{m}\n" for m in seen))
    QgsApplication.exit(0)


if project:
    QgsProject.instance().read(project)
QTimer.singleShot(8000, finish)  # the font manager's download attempt runs as a background task
