"""The "STARS" Processing provider; it lists its algorithms explicitly."""
from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms.base import ICON


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
        from .algorithms.demo_scene import DemoScene
        from .algorithms.evaluate_segmentation import EvaluateSegmentation
        from .algorithms.segment_map_sheets import SegmentMapSheets
        from .algorithms.segment_missing import SegmentMissingModality
        from .algorithms.train_stars import TrainStars

        return [TrainStars(), SegmentMissingModality(), SegmentMapSheets(), EvaluateSegmentation(), DemoScene()]
