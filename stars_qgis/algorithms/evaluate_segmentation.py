"""stars:evaluatesegmentation — accuracy of a classified raster against reference labels."""
from __future__ import annotations

import os

from qgis.core import (QgsProcessingOutputNumber, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterString)

from .base import StarsAlgorithm, integers, raster_path


class EvaluateSegmentation(StarsAlgorithm):
    PREDICTION = "PREDICTION"
    LABELS = "LABELS"
    CLASS_TABLE = "CLASS_TABLE"
    IGNORE_VALUES = "IGNORE_VALUES"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_JSON = "OUTPUT_JSON"
    MIOU = "MIOU"
    MF1 = "MF1"
    OA = "OA"

    def name(self) -> str:
        return "evaluatesegmentation"

    def displayName(self) -> str:  # noqa: N802
        return "Evaluate segmentation"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Compares a land-cover map with reference labels (read on the map's grid): confusion matrix, "
            "per-class IoU, F1, precision and recall, mIoU, mF1 and overall accuracy, as an HTML report "
            "(with a PNG of the confusion matrix beside it) and JSON. mIoU, mF1 and OA are also numeric outputs "
            "for models. The class table defaults to the one a STARS map carries."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.PREDICTION, "Land-cover map"))
        self.addParameter(QgsProcessingParameterRasterLayer(self.LABELS, "Reference labels"))
        self.addParameter(QgsProcessingParameterFile(self.CLASS_TABLE, "Class table (default: from the map)",
                                                     optional=True, fileFilter="Class tables (*.csv *.json)"))
        self.addParameter(QgsProcessingParameterString(self.IGNORE_VALUES, "Label values to ignore (e.g. 0)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT_HTML, "Report (HTML or Markdown)",
                                                                fileFilter="HTML (*.html);;Markdown (*.md)"))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT_JSON, "Metrics (JSON)",
                                                                fileFilter="JSON (*.json)", optional=True,
                                                                createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber(self.MIOU, "mIoU"))
        self.addOutput(QgsProcessingOutputNumber(self.MF1, "mF1"))
        self.addOutput(QgsProcessingOutputNumber(self.OA, "Overall accuracy"))

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.evaluate import check_report_paths, evaluate, write_reports

        pred = raster_path(self.parameterAsRasterLayer(parameters, self.PREDICTION, context), "land-cover map")
        labels = raster_path(self.parameterAsRasterLayer(parameters, self.LABELS, context), "reference labels")
        ignore_values = integers(self.parameterAsString(parameters, self.IGNORE_VALUES, context), "ignore values")
        table = self.parameterAsFile(parameters, self.CLASS_TABLE, context) or None
        out = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        js = self.parameterAsFileOutput(parameters, self.OUTPUT_JSON, context) or None
        png = os.path.splitext(out)[0] + "_confusion.png"
        markdown = out.lower().endswith(".md")
        check_report_paths(pred, labels, table, js, out if markdown else None, None if markdown else out, png)
        report = evaluate(pred, labels, table, ignore_values, cancel=feedback.isCanceled)
        if out.lower().endswith(".md"):
            write_reports(report, json_path=js, markdown=out, png=png)
        else:
            write_reports(report, json_path=js, html_path=out, png=png)
        feedback.pushInfo(f"mIoU {report['miou']:.4f}, mF1 {report['mf1']:.4f}, overall accuracy {report['oa']:.4f} "
                          f"over {report['pixels']:,} pixels")
        outputs = {self.OUTPUT_HTML: out, self.MIOU: report["miou"], self.MF1: report["mf1"], self.OA: report["oa"]}
        if js:
            outputs[self.OUTPUT_JSON] = js
        return outputs
