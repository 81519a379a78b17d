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

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
