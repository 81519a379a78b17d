"""stars:landcoverpolygons — a land-cover map as polygons with class names and areas."""
from __future__ import annotations

from qgis.core import (QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterRasterLayer)

from .base import (StarsAlgorithm, advanced, load_polygons, mmu_parameters, mmu_setting, raster_path,
                   simplify_parameter, simplify_setting)


class LandCoverPolygons(StarsAlgorithm):
    INPUT = "INPUT"
    MMU = "MMU"
    CONNECTIVITY = "CONNECTIVITY"
    SIMPLIFY = "SIMPLIFY"
    CLASS_TABLE = "CLASS_TABLE"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "landcoverpolygons"

    def displayName(self) -> str:  # noqa: N802
        return "Land-cover map to polygons"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Writes a classified map as polygons to a GeoPackage: one feature per patch with its class value, class "
            "name and area in m2 and ha, styled in the class colours. Neighbours share their boundaries (no gaps, "
            "no overlaps) and holes are kept. A minimum mapping unit cleans the map first (patches below it merge "
            "into their neighbours instead of leaving holes). Simplification smooths the pixel staircase: each "
            "shared boundary is simplified once for both neighbours, so they still fit exactly; it holds the "
            "boundaries in memory, and may move a polygon's area slightly."
        )

    def required(self, parameters, context) -> tuple[str, ...]:
        return ("numpy", "rasterio")  # no PyTorch: a map made elsewhere can be vectorised

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Land-cover map"))
        mmu_parameters(self)
        simplify_parameter(self)
        self.addParameter(advanced(QgsProcessingParameterFile(self.CLASS_TABLE, "Class table (default: from the map)",
                                                              optional=True,
                                                              fileFilter="Class tables (*.csv *.json)")))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Land-cover polygons",
                                                                fileFilter="GeoPackage (*.gpkg)"))

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.product.polygons import polygonize

        path = raster_path(self.parameterAsRasterLayer(parameters, self.INPUT, context), "land-cover map")
        setting = mmu_setting(self, parameters, context)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        made = polygonize(path, out, setting["mmu"], setting["mmu_connectivity"],
                          self.parameterAsFile(parameters, self.CLASS_TABLE, context) or None, cancel=feedback.isCanceled,
                          progress=lambda f: feedback.setProgress(100 * f), log=feedback.pushInfo,
                          simplify=simplify_setting(self, parameters, context))
        load_polygons(context, out, self.OUTPUT)
        feedback.pushInfo(f"{made['polygons']:,} polygons, {made['area_m2'] / 10_000:,.1f} ha in {out}")
        return {self.OUTPUT: out}
