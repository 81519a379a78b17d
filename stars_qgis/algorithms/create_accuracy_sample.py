"""stars:createaccuracysample — a stratified random sample of points from a land-cover map."""
from __future__ import annotations

from qgis.core import (QgsProcessingContext, QgsProcessingOutputNumber, QgsProcessingParameterBoolean,
                       QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterString)

from .base import StarsAlgorithm, advanced, raster_path

ALLOCATIONS = ["proportional", "equal"]
ALLOCATION_NAMES = ["proportional to the mapped area, with a minimum per class", "equal"]


class CreateAccuracySample(StarsAlgorithm):
    INPUT = "INPUT"
    CLASS_TABLE = "CLASS_TABLE"
    SIZE = "SIZE"
    TARGET_SE = "TARGET_SE"
    EXPECTED_UA = "EXPECTED_UA"
    ALLOCATION = "ALLOCATION"
    MIN_PER_CLASS = "MIN_PER_CLASS"
    PER_CLASS = "PER_CLASS"
    SEED = "SEED"
    REPLACE_LABELLED = "REPLACE_LABELLED"
    OUTPUT = "OUTPUT"
    POINTS = "POINTS"

    def name(self) -> str:
        return "createaccuracysample"

    def displayName(self) -> str:  # noqa: N802
        return "Create accuracy sample"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Draws a stratified random sample of pixel-centre points from a land-cover map (strata: the map "
            "classes; no-data left out) for design-based accuracy and area estimates (Olofsson et al. 2014), "
            "where no wall-to-wall reference exists. The size comes from a target standard error of overall "
            "accuracy and the user's accuracies you expect (eq. 13), or is given; proportional allocation gives "
            "every class at least the minimum. Memory stays flat at any map size.<br><br>The GeoPackage holds "
            "the points and the strata table. Open it, toggle editing and pick each point's reference class by "
            "name in the <i>reference</i> field (a value map of the class names), save, then run <i>Estimate "
            "accuracy and area</i>."
        )

    def required(self, parameters, context) -> tuple[str, ...]:
        return ("numpy", "rasterio")  # no PyTorch: a map made elsewhere can be assessed

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Land-cover map"))
        self.addParameter(QgsProcessingParameterNumber(self.SIZE, "Sample size (0: from the target standard error)",
                                                       QgsProcessingParameterNumber.Type.Integer, 0, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(self.TARGET_SE, "Target standard error of overall accuracy",
                                                       QgsProcessingParameterNumber.Type.Double, 0.01, minValue=0.001,
                                                       maxValue=0.5))
        self.addParameter(QgsProcessingParameterString(self.EXPECTED_UA, "Expected user's accuracy (one value, or "
                                                       "class=value, ...)", defaultValue="0.8"))
        self.addParameter(QgsProcessingParameterEnum(self.ALLOCATION, "Allocation", ALLOCATION_NAMES, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(self.MIN_PER_CLASS, "Minimum points per class",
                                                       QgsProcessingParameterNumber.Type.Integer, 50, minValue=0))
        self.addParameter(advanced(QgsProcessingParameterString(self.PER_CLASS, "Points per class instead "
                                                                "(class=N, ...)", optional=True)))
        self.addParameter(advanced(QgsProcessingParameterFile(self.CLASS_TABLE, "Class table (default: from the "
                                                              "map)", optional=True,
                                                              fileFilter="Class tables (*.csv *.json)")))
        self.addParameter(advanced(QgsProcessingParameterNumber(self.SEED, "Random seed",
                                                                QgsProcessingParameterNumber.Type.Integer, 0)))
        self.addParameter(advanced(QgsProcessingParameterBoolean(
            self.REPLACE_LABELLED, "Replace an existing sample whose points are labelled (its labels are lost)",
            defaultValue=False)))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Sample", fileFilter="GeoPackage (*.gpkg)"))
        self.addOutput(QgsProcessingOutputNumber(self.POINTS, "Points"))

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.accuracy.design import name_values
        from stars_core.accuracy.sample import draw_sample, refuse_labelled

        path = raster_path(self.parameterAsRasterLayer(parameters, self.INPUT, context), "land-cover map")
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        text = self.parameterAsString(parameters, self.EXPECTED_UA, context) or "0.8"
        try:
            users = float(text)
        except ValueError:
            users = name_values(text, float, "Expected user's accuracy")
        per_class = self.parameterAsString(parameters, self.PER_CLASS, context)
        size = self.parameterAsInt(parameters, self.SIZE, context)
        if not self.parameterAsBool(parameters, self.REPLACE_LABELLED, context):
            refuse_labelled(out, "the advanced option 'Replace an existing sample whose points are labelled'")
        result = draw_sample(
            path, out, class_table=self.parameterAsFile(parameters, self.CLASS_TABLE, context) or None,
            n=size or None, target_se=self.parameterAsDouble(parameters, self.TARGET_SE, context),
            expected_users=users, allocation=ALLOCATIONS[self.parameterAsEnum(parameters, self.ALLOCATION, context)],
            minimum=self.parameterAsInt(parameters, self.MIN_PER_CLASS, context),
            per_class=name_values(per_class, int, "Points per class") if per_class else None,
            seed=self.parameterAsInt(parameters, self.SEED, context), cancel=feedback.isCanceled,
            progress=lambda d, t: feedback.setProgress(100 * d / max(t, 1)), log=feedback.pushInfo,
            replace_labelled=True)  # refused above in QGIS's words
        for name, px, n in zip(result.strata.names, result.strata.pixels, result.points):
            feedback.pushInfo(f"{name}: {n} points of {px:,} pixels")
        # added to the project at the end; its default style, stored in the GeoPackage, brings the value
        # map of class names on `reference`
        context.addLayerToLoadOnCompletion(f"{out}|layername=sample", QgsProcessingContext.LayerDetails(
            "accuracy sample", context.project(), self.OUTPUT))
        return {self.OUTPUT: out, self.POINTS: result.total}
