"""Registers the STARS Processing provider when QGIS loads the plugin and removes it on unload."""
from __future__ import annotations

from qgis.core import QgsApplication


class StarsPlugin:
    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None

    def initProcessing(self) -> None:  # noqa: N802
        from .provider import StarsProvider

        self.provider = StarsProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        if self.iface is not None:  # a menu entry for the dependency installer: no terminal needed
            try:  # Qt6 (QGIS 4) keeps QAction in QtGui; Qt5 (QGIS 3) in QtWidgets
                from qgis.PyQt.QtGui import QAction
            except ImportError:
                from qgis.PyQt.QtWidgets import QAction
            from qgis.PyQt.QtGui import QIcon

            from .algorithms.base import ICON

            self.install_action = QAction(QIcon(str(ICON)), "STARS: install dependencies", self.iface.mainWindow())
            self.install_action.triggered.connect(self.open_installer)
            self.iface.addPluginToMenu("STARS", self.install_action)

    def open_installer(self) -> None:
        import processing

        processing.execAlgorithmDialog("stars:installdependencies")

    def unload(self) -> None:
        if getattr(self, "install_action", None) is not None and self.iface is not None:
            self.iface.removePluginMenu("STARS", self.install_action)
            self.install_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
