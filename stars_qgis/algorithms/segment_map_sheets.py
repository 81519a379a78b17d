"""stars:segmentmapsheets — one classified GeoTIFF per map sheet, a mosaic and a summary."""
from __future__ import annotations

import os

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingOutputFile, QgsProcessingOutputNumber,
                       QgsProcessingOutputRasterLayer, QgsProcessingParameterBoolean, QgsProcessingParameterField,
                       QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterRasterLayer)

from .base import (RUNTIME_HELP, mmu_parameters, polygon_file, raster_path, segment_config, segment_parameters,
                   SegmentingAlgorithm)


class SegmentMapSheets(SegmentingAlgorithm):
    SHEETS = "SHEETS"
    NAME_FIELD = "NAME_FIELD"
    INPUT = "INPUT"
    SKIP_EXISTING = "SKIP_EXISTING"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    MOSAIC = "MOSAIC"
    MOSAIC_MMU = "MOSAIC_MMU"
    SUMMARY = "SUMMARY"
    DONE = "DONE"
    FAILED = "FAILED"

    def name(self) -> str:
        return "segmentmapsheets"

    def displayName(self) -> str:  # noqa: N802
        return "Segment map sheets"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Segments a large modality-1 raster (or a VRT of many) sheet by sheet: one classified GeoTIFF per "
            "polygon of the map-sheet layer, clipped to the sheet and named after the name field, a VRT mosaic "
            "of all sheets (mosaic.vrt) and a summary table (summary.csv). The model is loaded once.<br><br>"
            "'Skip sheets already done' resumes an interrupted run. A sheet that fails is reported in the log "
            "and the summary, and the others go on.<br><br>With a minimum mapping unit the mosaic is cleaned as one "
            "raster (mosaic_mmu.tif), so a patch crossing a sheet edge counts as one patch and no seams appear; "
            "the sheets themselves stay the model's map." + RUNTIME_HELP
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource(self.SHEETS, "Map sheets",
                                                              [QgsProcessing.SourceType.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterField(self.NAME_FIELD, "Sheet name field", parentLayerParameterName=self.SHEETS,
                                                      optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Modality-1 raster (SAR or DSM, or a VRT)"))
        self.model_parameter()
        self.addParameter(QgsProcessingParameterBoolean(self.SKIP_EXISTING, "Skip sheets already done", defaultValue=True))
        mmu_parameters(self)
        segment_parameters(self)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.MOSAIC, "Mosaic of all sheets"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.MOSAIC_MMU, "Mosaic cleaned to the minimum mapping unit"))
        self.addOutput(QgsProcessingOutputFile(self.SUMMARY, "Summary table"))
        self.addOutput(QgsProcessingOutputNumber(self.DONE, "Sheets written or already done"))
        self.addOutput(QgsProcessingOutputNumber(self.FAILED, "Sheets that failed"))

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.segmentation.infer import open_runner_cached
        from stars_core.segmentation.sheets import read_sheets, segment_sheets

        cfg = segment_config(self, parameters, context)
        sheets_file = polygon_file(self, parameters, self.SHEETS, context, feedback)  # the selection, if any
        field = self.parameterAsString(parameters, self.NAME_FIELD, context) or None
        source = raster_path(self.parameterAsRasterLayer(parameters, self.INPUT, context), "input raster")
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        os.makedirs(folder, exist_ok=True)
        loaded = open_runner_cached(self.parameterAsFile(parameters, self.MODEL, context), cfg)
        result = segment_sheets(loaded, source, read_sheets(sheets_file, field), folder, cfg,
                                skip_existing=self.parameterAsBool(parameters, self.SKIP_EXISTING, context),
                                progress=self.progress(feedback), cancel=feedback.isCanceled, log=self.log(feedback))
        failed = result.count("failed")
        first = next((r for r in result.rows if r.status == "failed"), None)
        reason = f"; the first, sheet {first.name}: {first.message}" if first is not None else ""
        if failed:
            feedback.reportError(f"{failed} sheet(s) failed{reason}; see {result.summary}", fatalError=False)
        if result.mosaic is None:
            raise QgsProcessingException(f"no sheet was segmented{reason or ' (none overlaps the raster)'}; "
                                         f"see {result.summary}")
        outputs = {self.OUTPUT_FOLDER: folder, self.MOSAIC: str(result.mosaic), self.SUMMARY: str(result.summary),
                   self.DONE: result.count("done") + result.count("skipped"), self.FAILED: failed}
        if cfg.mmu is not None:
            outputs[self.MOSAIC_MMU] = os.path.join(folder, "mosaic_mmu.tif")
        return outputs
