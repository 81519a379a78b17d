"""stars:demoscene — write the generated demo scene (SAR, optical, labels, class table, map sheets)."""
from __future__ import annotations

import re

from qgis.core import (QgsProcessingOutputFile, QgsProcessingOutputRasterLayer, QgsProcessingOutputVectorLayer,
                       QgsProcessingParameterFolderDestination, QgsProcessingParameterNumber,
                       QgsProcessingParameterString)

from .base import StarsAlgorithm, advanced


class DemoScene(StarsAlgorithm):
    SIZE = "SIZE"
    SEED = "SEED"
    SHEETS = "SHEETS"
    PIXEL_SIZE = "PIXEL_SIZE"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    SAR = "SAR"
    OPTICAL = "OPTICAL"
    LABELS = "LABELS"
    CLASSES = "CLASSES"
    SHEET_GRID = "SHEET_GRID"

    def name(self) -> str:
        return "demoscene"

    def displayName(self) -> str:  # noqa: N802
        return "Create demo scene"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Writes a generated, georeferenced scene to try STARS on (UTM 32N): sar.tif (VV, VH in dB, with "
            "speckle and a no-data swath edge), optical.tif (B, G, R, NIR), labels.tif (buildings, roads, "
            "water, forest, farmland, bare ground; 0 = no data), classes.csv (names and colours) and "
            "sheets.gpkg (a map-sheet grid with a 'name' field).<br><br>The SAR confuses what real SAR "
            "confuses (farmland and bare ground, roads and water); the optical image separates the classes."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        num = QgsProcessingParameterNumber.Type.Integer
        self.addParameter(QgsProcessingParameterNumber(self.SIZE, "Pixels per side", num, 1024, minValue=64))
        self.addParameter(QgsProcessingParameterString(self.SHEETS, "Map-sheet grid (rows x columns)", "2x2"))
        self.addParameter(advanced(QgsProcessingParameterNumber(self.SEED, "Random seed", num, 0, minValue=0)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.PIXEL_SIZE, "Pixel size (metres)", QgsProcessingParameterNumber.Type.Double, 2.0, minValue=0.1)))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.SAR, "SAR"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.OPTICAL, "Optical"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.LABELS, "Labels"))
        self.addOutput(QgsProcessingOutputFile(self.CLASSES, "Class table"))
        self.addOutput(QgsProcessingOutputVectorLayer(self.SHEET_GRID, "Map sheets"))

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.demo_scene import make_demo_scene

        text = self.parameterAsString(parameters, self.SHEETS, context)
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
        if match is None:
            raise ValueError(f"the map-sheet grid must be rows x columns, e.g. 2x2; got {text!r}")
        grid = [int(match[1]), int(match[2])]
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        paths = make_demo_scene(folder, size=self.parameterAsInt(parameters, self.SIZE, context),
                                seed=self.parameterAsInt(parameters, self.SEED, context), sheets=tuple(grid),
                                pixel_size=self.parameterAsDouble(parameters, self.PIXEL_SIZE, context))
        feedback.pushInfo(f"wrote the demo scene into {folder}")
        return {self.OUTPUT_FOLDER: folder, self.SAR: str(paths["sar"]), self.OPTICAL: str(paths["optical"]),
                self.LABELS: str(paths["labels"]), self.CLASSES: str(paths["classes"]),
                self.SHEET_GRID: str(paths["sheets"])}
