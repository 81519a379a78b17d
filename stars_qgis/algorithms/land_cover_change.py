"""stars:landcoverchange — the from-to map of two land-cover maps, its transition matrix and polygons."""
from __future__ import annotations

from qgis.core import (QgsProcessingContext, QgsProcessingOutputNumber, QgsProcessingParameterEnum,
                       QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterRasterDestination, QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterVectorDestination)

from .base import StarsAlgorithm, advanced, mmu_parameters, mmu_setting, raster_path

UNCHANGED = ["keep", "single"]
UNCHANGED_NAMES = ["keep their class", "one 'no change' class"]


class LandCoverChange(StarsAlgorithm):
    MAP_A = "MAP_A"
    MAP_B = "MAP_B"
    UNCHANGED = "UNCHANGED"
    GROUPS = "GROUPS"
    MMU = "MMU"
    CONNECTIVITY = "CONNECTIVITY"
    CLASS_TABLE = "CLASS_TABLE"
    OUTPUT = "OUTPUT"
    POLYGONS = "POLYGONS"
    MATRIX = "MATRIX"
    REPORT = "REPORT"
    CHANGED_HA = "CHANGED_HA"

    def name(self) -> str:
        return "landcoverchange"

    def displayName(self) -> str:  # noqa: N802
        return "Land-cover change between two maps"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "The from-to map of two land-cover maps of one area, e.g. SAR-only maps of two dates: one class per "
            "transition ('forest -> farmland'), unchanged pixels keeping their class or sharing 'no change', styled "
            "with the transitions it holds, each in a colour of its own. The maps must have the same classes; the second is read on the first one's "
            "grid. A minimum mapping unit merges change patches smaller than it into their neighbours (a small "
            "patch inside stable land becomes stable). A grouping table (CSV: from,to,group; class names or values, "
            "* for any) gathers transitions into a few change classes. Writes the transition matrix of mapped "
            "hectares (CSV, and an HTML report) and, optionally, the changed patches as polygons with their from "
            "and to classes. Mapped areas have unknown errors: sample the change map (Create accuracy sample) and "
            "estimate the change areas with their intervals."
        )

    def required(self, parameters, context) -> tuple[str, ...]:
        return ("numpy", "rasterio")  # maps made elsewhere work too: no PyTorch

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.MAP_A, "Land-cover map, first date"))
        self.addParameter(QgsProcessingParameterRasterLayer(self.MAP_B, "Land-cover map, second date"))
        self.addParameter(QgsProcessingParameterEnum(self.UNCHANGED, "Unchanged pixels", UNCHANGED_NAMES,
                                                     defaultValue=0))
        mmu_parameters(self)
        self.addParameter(advanced(QgsProcessingParameterFile(
            self.GROUPS, "Grouping of transitions (CSV: from,to,group)", optional=True, fileFilter="CSV (*.csv)")))
        self.addParameter(advanced(QgsProcessingParameterFile(
            self.CLASS_TABLE, "Class table (default: from the maps)", optional=True,
            fileFilter="Class tables (*.csv *.json)")))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Change map"))
        self.addParameter(QgsProcessingParameterFileDestination(self.MATRIX, "Transition matrix (mapped ha)",
                                                                fileFilter="CSV (*.csv)", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(self.REPORT, "Change report", optional=True,
                                                                fileFilter="HTML (*.html)"))
        self.addParameter(QgsProcessingParameterVectorDestination(self.POLYGONS, "Change polygons", optional=True,
                                                                  createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber(self.CHANGED_HA, "Changed area (mapped ha)"))

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.change import change_map

        a = raster_path(self.parameterAsRasterLayer(parameters, self.MAP_A, context), "first date's map")
        b = raster_path(self.parameterAsRasterLayer(parameters, self.MAP_B, context), "second date's map")
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        polygons = self.parameterAsOutputLayer(parameters, self.POLYGONS, context) or None
        matrix = self.parameterAsFileOutput(parameters, self.MATRIX, context) or None
        report = self.parameterAsFileOutput(parameters, self.REPORT, context) or None
        setting = mmu_setting(self, parameters, context)
        result = change_map(
            a, b, out, unchanged=UNCHANGED[self.parameterAsEnum(parameters, self.UNCHANGED, context)],
            groups=self.parameterAsFile(parameters, self.GROUPS, context) or None, mmu=setting["mmu"],
            connectivity=setting["mmu_connectivity"],
            class_table=self.parameterAsFile(parameters, self.CLASS_TABLE, context) or None,
            polygons=polygons, matrix_csv=matrix, html_report=report, cancel=feedback.isCanceled,
            progress=lambda f: feedback.setProgress(100 * f), log=feedback.pushInfo)
        feedback.pushInfo(f"{result.changed_ha:,.2f} ha changed of {result.total_ha:,.2f} ha")
        for row in sorted(result.rows(), key=lambda r: -r["area_ha"]):
            if row["from"] != row["to"]:
                feedback.pushInfo(f"{row['from']} -> {row['to']}: {row['area_ha']:,.2f} ha")
        if context.willLoadLayerOnCompletion(out):  # in the transitions it holds, not a 65,536-row colour table
            from ..style import PalettedStyle

            context.layerToLoadOnCompletionDetails(out).setPostProcessor(PalettedStyle(result.present))
        if polygons:
            context.addLayerToLoadOnCompletion(f"{polygons}|layername=landcover", QgsProcessingContext.LayerDetails(
                "change polygons", context.project(), self.POLYGONS))
        return {self.OUTPUT: out, self.POLYGONS: polygons, self.MATRIX: matrix, self.REPORT: report,
                self.CHANGED_HA: result.changed_ha}
