"""The "STARS" Processing provider; it lists its algorithms explicitly."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

ICON = Path(__file__).resolve().parent.parent / "resources" / "icon.svg"


class StarsProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "stars"

    def name(self) -> str:
        return "STARS"

    def longName(self) -> str:  # noqa: N802
        return "STARS missing-modality segmentation"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def loadAlgorithms(self) -> None:  # noqa: N802
        for algorithm in self._algorithms():
            self.addAlgorithm(algorithm)

    def _algorithms(self) -> list:
        return []
