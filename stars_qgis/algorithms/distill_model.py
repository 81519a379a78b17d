"""stars:distillmodel — a fast SAR-only student trained to reproduce a STARS model's SAR-only map."""
from __future__ import annotations

from qgis.core import (QgsProcessing, QgsProcessingOutputNumber, QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber, QgsProcessingParameterString)

from stars_core.config import BACKBONES
from stars_core.distill.config import STUDENT_DECODER, STUDENT_WIDTH, DistillConfig

from .base import DEVICES, StarsAlgorithm, advanced, integers, raster_path

D = DistillConfig()


class DistillModel(StarsAlgorithm):
    TEACHER = "TEACHER"
    INPUTS = "INPUTS"
    LABELS = "LABELS"
    IGNORE_VALUES = "IGNORE_VALUES"
    BACKBONE = "BACKBONE"
    WIDTH = "WIDTH"
    DECODER_CHANNELS = "DECODER_CHANNELS"
    STEPS = "STEPS"
    BATCH_SIZE = "BATCH_SIZE"
    CHIP_SIZE = "CHIP_SIZE"
    LR = "LR"
    TEMPERATURE = "TEMPERATURE"
    SEED = "SEED"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"
    AGREEMENT = "AGREEMENT"

    def name(self) -> str:
        return "distillmodel"

    def displayName(self) -> str:  # noqa: N802
        return "Distill a fast model"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Trains a small SAR-only model (the student: one light encoder and decoder) to reproduce the SAR-only "
            "map of a STARS model (the teacher), on chips of your SAR rasters, labelled or not. It segments "
            "several times faster than the teacher and is an ordinary model file: every segment algorithm, "
            "'Export to ONNX' and fine-tuning take it.<br><br>The student learns the teacher's class "
            "probabilities softened by a temperature; label rasters (one per SAR raster, same order) add "
            "their cross-entropy. The log ends with how often student and teacher agree on chips apart from "
            "training; check the student's map before using it in place of the teacher's."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        integer, double = QgsProcessingParameterNumber.Type.Integer, QgsProcessingParameterNumber.Type.Double
        self.addParameter(QgsProcessingParameterFile(self.TEACHER, "Teacher: a STARS model file",
                                                     fileFilter="STARS model (*.stars)"))
        self.addParameter(QgsProcessingParameterMultipleLayers(self.INPUTS, "SAR rasters to learn on",
                                                               QgsProcessing.SourceType.TypeRaster))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.LABELS, "Label rasters, one per SAR raster in the same order (optional)",
            QgsProcessing.SourceType.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterString(self.IGNORE_VALUES, "Label values to ignore (e.g. 0)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterEnum(self.BACKBONE, "Student backbone", BACKBONES,
                                                     defaultValue=BACKBONES.index(D.backbone)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.WIDTH, f"Student encoder width (empty: {STUDENT_WIDTH}, or the teacher's where narrower)", integer,
            None, optional=True, minValue=8)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.DECODER_CHANNELS, f"Student decoder channels (empty: {STUDENT_DECODER}, or the teacher's where fewer)",
            integer, None, optional=True, minValue=16)))
        self.addParameter(QgsProcessingParameterNumber(self.STEPS, "Steps", integer, D.steps, minValue=1))
        self.addParameter(advanced(QgsProcessingParameterNumber(self.BATCH_SIZE, "Chips per step", integer, D.batch_size,
                                                                minValue=1)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.CHIP_SIZE, "Chip size (empty: the teacher's training chip size)", integer, None, optional=True,
            minValue=32)))
        self.addParameter(advanced(QgsProcessingParameterNumber(self.LR, "Learning rate", double, D.lr, minValue=1e-7)))
        self.addParameter(advanced(QgsProcessingParameterNumber(self.TEMPERATURE, "Temperature", double, D.temperature,
                                                                minValue=0.1)))
        self.addParameter(advanced(QgsProcessingParameterNumber(self.SEED, "Random seed", integer, 0)))
        self.addParameter(advanced(QgsProcessingParameterEnum(self.DEVICE, "Device", DEVICES, defaultValue=0)))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Student model file",
                                                                fileFilter="STARS model (*.stars)"))
        self.addOutput(QgsProcessingOutputNumber(self.AGREEMENT, "Share of pixels where student and teacher agree"))

    def _optional_int(self, parameters, key: str, context) -> int | None:
        """An optional number left empty: None (the core's default)."""
        return None if parameters.get(key) in (None, "") else self.parameterAsInt(parameters, key, context)

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.distill import distill

        m1 = [raster_path(l, "SAR raster") for l in self.parameterAsLayerList(parameters, self.INPUTS, context)]
        labels = [raster_path(l, "label raster") for l in self.parameterAsLayerList(parameters, self.LABELS, context)]
        chip = self._optional_int(parameters, self.CHIP_SIZE, context)
        cfg = DistillConfig(
            backbone=BACKBONES[self.parameterAsEnum(parameters, self.BACKBONE, context)],
            encoder_width=self._optional_int(parameters, self.WIDTH, context),
            decoder_channels=self._optional_int(parameters, self.DECODER_CHANNELS, context),
            steps=self.parameterAsInt(parameters, self.STEPS, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context), chip_size=chip,
            lr=self.parameterAsDouble(parameters, self.LR, context),
            temperature=self.parameterAsDouble(parameters, self.TEMPERATURE, context),
            ignore_values=tuple(integers(self.parameterAsString(parameters, self.IGNORE_VALUES, context),
                                         "label values to ignore")),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)])
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        result = distill(self.parameterAsFile(parameters, self.TEACHER, context), m1, out, cfg, labels=labels or None,
                         progress=self.progress(feedback), cancel=feedback.isCanceled, log=self.log(feedback))
        return {self.OUTPUT: out, self.AGREEMENT: result.agreement}
