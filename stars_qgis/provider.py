"""The "STARS" Processing provider; it lists its algorithms explicitly."""
from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms.base import ICON
from .settings import THREADS_SETTING


class StarsProvider(QgsProcessingProvider):
    def load(self) -> bool:
        try:
            from processing.core.ProcessingConfig import ProcessingConfig, Setting

            ProcessingConfig.settingIcons[self.name()] = self.icon()
            ProcessingConfig.addSetting(Setting(
                self.name(), THREADS_SETTING, "CPU threads for PyTorch (0 = as many as there are idle cores, "
                "re-checked every few seconds)", 0, valuetype=Setting.INT))
            ProcessingConfig.readSettings()
        except ImportError:  # Processing's Python code is not there: the default (adapt) applies
            pass
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        try:
            from processing.core.ProcessingConfig import ProcessingConfig

            ProcessingConfig.removeSetting(THREADS_SETTING)
        except ImportError:
            pass

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
        from .algorithms.clean_land_cover_map import CleanLandCoverMap
        from .algorithms.create_accuracy_sample import CreateAccuracySample
        from .algorithms.demo_scene import DemoScene
        from .algorithms.distill_model import DistillModel
        from .algorithms.estimate_accuracy_area import EstimateAccuracyArea
        from .algorithms.evaluate_segmentation import EvaluateSegmentation
        from .algorithms.export_onnx import ExportOnnx
        from .algorithms.get_sentinel_pair import GetSentinelPair
        from .algorithms.get_sentinel_series import GetSentinelSeries
        from .algorithms.install_dependencies import InstallDependencies
        from .algorithms.land_cover_change import LandCoverChange
        from .algorithms.land_cover_polygons import LandCoverPolygons
        from .algorithms.segment_map_sheets import SegmentMapSheets
        from .algorithms.segment_missing import SegmentMissingModality
        from .algorithms.segment_time_series import SegmentTimeSeries
        from .algorithms.train_stars import TrainStars

        return [GetSentinelPair(), GetSentinelSeries(),
                TrainStars(), DistillModel(), SegmentMissingModality(), SegmentMapSheets(), SegmentTimeSeries(),
                EvaluateSegmentation(), ExportOnnx(),
                CleanLandCoverMap(), LandCoverPolygons(), LandCoverChange(), CreateAccuracySample(), EstimateAccuracyArea(),
                DemoScene(), InstallDependencies()]
