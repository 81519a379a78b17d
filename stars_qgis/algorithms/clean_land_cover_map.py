"""stars:cleanlandcovermap — a land-cover map cleaned to a minimum mapping unit."""
from __future__ import annotations

from qgis.core import QgsProcessingException, QgsProcessingParameterRasterDestination, QgsProcessingParameterRasterLayer

from .base import StarsAlgorithm, mmu_parameters, mmu_setting, raster_path


class CleanLandCoverMap(StarsAlgorithm):
    INPUT = "INPUT"
    MMU = "MMU"
    CONNECTIVITY = "CONNECTIVITY"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "cleanlandcovermap"

    def displayName(self) -> str:  # noqa: N802
        return "Clean land-cover map"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Cleans a classified map to a minimum mapping unit: patches (connected pixels of one class) smaller "
            "than the unit merge into their largest neighbour, with GDAL's sieve filter. Give the unit as an area "
            "(0.5ha, 500m2, 0.01km2) or in pixels (12px). No-data stays no-data and never grows; the colour table, "
            "class names and legend are kept. Memory follows the number of patches, not the map's size, so a "
            "mosaic (VRT) of map sheets can be cleaned as one raster, without seams."
        )

    def required(self, parameters, context) -> tuple[str, ...]:
        return ("numpy", "rasterio")  # no PyTorch: a map made elsewhere can be assessed

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Land-cover map"))
        mmu_parameters(self)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Cleaned land-cover map"))

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.product.mmu import clean_map

        path = raster_path(self.parameterAsRasterLayer(parameters, self.INPUT, context), "land-cover map")
        setting = mmu_setting(self, parameters, context)
        if setting["mmu"] is None:
            raise QgsProcessingException("give the minimum mapping unit, e.g. 0.5ha, 500m2 or 12px")
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        result = clean_map(path, out, setting["mmu"], setting["mmu_connectivity"], cancel=feedback.isCanceled,
                           progress=lambda f: feedback.setProgress(100 * f), log=feedback.pushInfo)
        feedback.pushInfo(f"{result['changed']:,} pixels changed class")
        return {self.OUTPUT: out}
