"""stars:exportonnx — export one branch of a model file to ONNX (segmentation without PyTorch)."""
from __future__ import annotations

from qgis.core import (QgsProcessingParameterBoolean, QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterLayer)

from .base import StarsAlgorithm, advanced, raster_path

BRANCHES = ["m1", "m2", "fused"]
BRANCH_NAMES = ["modality 1 alone (SAR/DSM: the missing-modality map)", "modality 2 alone (optical)",
                "both modalities (input: modality-1 bands, then modality-2 bands)"]


class ExportOnnx(StarsAlgorithm):
    MODEL = "MODEL"
    BRANCH = "BRANCH"
    TILE_SIZE = "TILE_SIZE"
    INT8 = "INT8"
    CALIBRATE = "CALIBRATE"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "exportonnx"

    def displayName(self) -> str:  # noqa: N802
        return "Export to ONNX"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Writes one branch of a STARS model file as an ONNX model, which 'Segment with missing modality' "
            "and 'Segment map sheets' run with ONNX Runtime (no PyTorch needed) and which Deepness can load. "
            "The graph takes raw band values divided by 255 (Deepness's own input scaling) and does the model "
            "file's normalisation itself; class names, band names, tile size and resolution are in its "
            "metadata. In Deepness, map the raster's bands in the model's band order and leave the "
            "standardisation at mean 0, std 1.<br><br>int8 quantisation makes CPU segmentation faster; it is "
            "calibrated on tiles of a raster of the branch's input, with 7-bit weights so that every CPU, with or "
            "without VNNI, gives the same map."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(self.MODEL, "STARS model file", fileFilter="STARS model (*.stars)"))
        self.addParameter(QgsProcessingParameterEnum(self.BRANCH, "Branch", BRANCH_NAMES, defaultValue=0))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.TILE_SIZE, "Tile size in the metadata (empty: the training chip size)",
            QgsProcessingParameterNumber.Type.Integer, None, optional=True, minValue=32)))
        self.addParameter(advanced(QgsProcessingParameterBoolean(self.INT8, "Quantise to int8", defaultValue=False)))
        self.addParameter(advanced(QgsProcessingParameterRasterLayer(
            self.CALIBRATE, "Calibration raster for int8 (the branch's input)", optional=True)))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "ONNX model", fileFilter="ONNX (*.onnx)"))

    def required(self, parameters, context) -> tuple[str, ...]:
        from .. import deps

        return deps.REQUIRED + ("onnx", "onnxruntime")

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.engines.onnx_export import export_onnx

        tile = None if parameters.get(self.TILE_SIZE) in (None, "") else \
            self.parameterAsInt(parameters, self.TILE_SIZE, context)
        layer = self.parameterAsRasterLayer(parameters, self.CALIBRATE, context)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        export_onnx(self.parameterAsFile(parameters, self.MODEL, context), out,
                    BRANCHES[self.parameterAsEnum(parameters, self.BRANCH, context)], tile,
                    self.parameterAsBool(parameters, self.INT8, context),
                    raster_path(layer, "calibration raster") if layer is not None else None, log=self.log(feedback))
        return {self.OUTPUT: out}
