"""stars:estimateaccuracyarea — accuracy and class areas with 95 % intervals from a labelled sample."""
from __future__ import annotations

import json

from qgis.core import (QgsProcessingException, QgsProcessingOutputNumber, QgsProcessingOutputString,
                       QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterVectorLayer)

from .base import StarsAlgorithm, advanced, raster_path


class EstimateAccuracyArea(StarsAlgorithm):
    INPUT = "INPUT"
    SAMPLE = "SAMPLE"
    CLASS_TABLE = "CLASS_TABLE"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_JSON = "OUTPUT_JSON"
    OUTPUT_CSV = "OUTPUT_CSV"
    OA = "OA"
    OA_CI95 = "OA_CI95"
    AREAS = "AREAS"
    AREAS_FIRST = "AREAS_FIRST"
    AREAS_SECOND = "AREAS_SECOND"

    def name(self) -> str:
        return "estimateaccuracyarea"

    def displayName(self) -> str:  # noqa: N802
        return "Estimate accuracy and area"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Design-based estimates from the labelled points of <i>Create accuracy sample</i> (Olofsson et al. "
            "2014): the error matrix in estimated area proportions; overall, user's and producer's accuracy; "
            "and the area of every class (ha and % of the mapped area) with its 95 % interval beside the "
            "mapped pixel-count area. Unlabelled points are left out and listed; points with a reference value "
            "outside the class table, points off the map and a sample of another map are refused. A class with "
            "fewer than 2 labelled points gets no interval (the report says so). Overall accuracy, its interval "
            "and the areas (JSON) are outputs for graphical models.<br><br>On a sample of a change map (from "
            "<i>Land-cover change between two maps</i>, labelled with reference_from and reference_to), the areas are "
            "the transitions', and the class areas of each date are outputs too (Stehman 2014)."
        )

    def required(self, parameters, context) -> tuple[str, ...]:
        return ("numpy", "rasterio")  # no PyTorch: a map made elsewhere can be assessed

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Land-cover map"))
        self.addParameter(QgsProcessingParameterVectorLayer(self.SAMPLE, "Labelled sample (from Create accuracy "
                                                            "sample)"))
        self.addParameter(advanced(QgsProcessingParameterFile(self.CLASS_TABLE, "Class table (default: from the "
                                                              "map)", optional=True,
                                                              fileFilter="Class tables (*.csv *.json)")))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT_HTML, "Report", fileFilter="HTML (*.html)"))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT_JSON, "Estimates (JSON)",
                                                                fileFilter="JSON (*.json)", optional=True,
                                                                createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT_CSV, "Areas and accuracies per class (CSV)",
                                                                fileFilter="CSV (*.csv)", optional=True,
                                                                createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber(self.OA, "Overall accuracy"))
        self.addOutput(QgsProcessingOutputNumber(self.OA_CI95, "Overall accuracy, 95 % half-width"))
        self.addOutput(QgsProcessingOutputString(self.AREAS, "Class areas, ha, with 95 % half-widths (JSON)"))
        for key, when in ((self.AREAS_FIRST, "first"), (self.AREAS_SECOND, "second")):
            self.addOutput(QgsProcessingOutputString(key, f"Change map's sample: class areas at the {when} date, ha, "
                                                          f"with 95 % half-widths (JSON; {{}} otherwise)"))

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.accuracy.assess import assess, assess_inputs
        from stars_core.accuracy.report import date_rows, rows, text, write_reports
        from stars_core.files import check_outputs

        path = raster_path(self.parameterAsRasterLayer(parameters, self.INPUT, context), "land-cover map")
        layer = self.parameterAsVectorLayer(parameters, self.SAMPLE, context)
        source = layer.source().split("|")[0] if layer is not None else ""
        if layer is None or layer.providerType() != "ogr" or not source.lower().endswith(".gpkg"):
            raise QgsProcessingException("the sample must be the GeoPackage written by Create accuracy sample (its "
                                         "'sample' layer), with the labels saved")
        if layer.isEditable() and layer.isModified():
            raise QgsProcessingException(f"layer '{layer.name()}' has unsaved edits: save them (Toggle Editing, Save) "
                                         f"so the estimate uses every label")
        outputs = {k: self.parameterAsFileOutput(parameters, k, context) or None
                   for k in (self.OUTPUT_HTML, self.OUTPUT_JSON, self.OUTPUT_CSV)}
        class_table = self.parameterAsFile(parameters, self.CLASS_TABLE, context) or None
        check_outputs({**assess_inputs(path, source, class_table), "classified map": None, "land-cover map": path},
                      {"report": outputs[self.OUTPUT_HTML], "JSON": outputs[self.OUTPUT_JSON],
                       "CSV": outputs[self.OUTPUT_CSV]})
        result = assess(path, source, class_table,
                        cancel=feedback.isCanceled, progress=lambda d, t: feedback.setProgress(100 * d / max(t, 1)))
        write_reports(result, outputs[self.OUTPUT_JSON], outputs[self.OUTPUT_CSV], outputs[self.OUTPUT_HTML])
        for line in text(result).splitlines():
            feedback.pushInfo(line)
        e = result.estimate
        areas = {r["class"]: {"ha": r["area_ha"], "ci95_ha": r["area_ci95_ha"], "mapped_ha": r["mapped_ha"]}
                 for r in rows(result)}
        out = {self.OA: e.overall, self.OA_CI95: e.ci95(e.overall_se), self.AREAS: json.dumps(areas)}
        by_date = date_rows(result)
        for key, when in ((self.AREAS_FIRST, "first"), (self.AREAS_SECOND, "second")):
            out[key] = json.dumps({r["class"]: {"ha": r["area_ha"], "ci95_ha": r["area_ci95_ha"],
                                                "mapped_ha": r["mapped_ha"]}
                                   for r in by_date.get(when, [])})
        out.update({k: v for k, v in outputs.items() if v})
        return out
