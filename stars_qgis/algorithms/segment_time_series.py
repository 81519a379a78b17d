"""stars:segmenttimeseries — a land-cover map for every date of a SAR series, ready for the Temporal
Controller."""
from __future__ import annotations

import os

from qgis.core import (QgsProcessing, QgsProcessingContext, QgsProcessingOutputFile, QgsProcessingOutputNumber,
                       QgsProcessingOutputRasterLayer,
                       QgsProcessingParameterBoolean, QgsProcessingParameterFile,
                       QgsProcessingParameterFolderDestination, QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer)

from .base import (RUNTIME_HELP, advanced, raster_path, segment_config, segment_parameters, SegmentingAlgorithm)


class SegmentTimeSeries(SegmentingAlgorithm):
    INPUTS = "INPUTS"
    DATES = "DATES"
    GRID = "GRID"
    TEMPORAL_FILTER = "TEMPORAL_FILTER"
    SWITCH = "SWITCH"
    SKIP_EXISTING = "SKIP_EXISTING"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    RECORD = "RECORD"
    DONE = "DONE"
    FIRST_MAP = "FIRST_MAP"
    LAST_MAP = "LAST_MAP"

    def name(self) -> str:
        return "segmenttimeseries"

    def displayName(self) -> str:  # noqa: N802
        return "Segment a SAR time series"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "A land-cover map for every date of a SAR series: every raster is warped onto the grid of the first "
            "(or of the grid raster), and pixels a date does not cover are no data. Dates come from the dates table "
            "(CSV: date,path), the file names (an ISO date such as 2024-05-01) or the rasters' metadata. The maps "
            "enter the project in one group, each with its date as its temporal range; the Temporal Controller "
            "plays one date per frame (step 'source timestamps'). A rerun skips dates already done."
            "<br><br>The temporal filter (a hidden Markov model over each pixel's dates) removes flicker between "
            "dates: a class change must be supported by the following dates. A real change lasting a single date "
            "can be removed too; a smaller switch probability removes more of both." + RUNTIME_HELP
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(self.INPUTS, "SAR rasters, one per date",
                                                               QgsProcessing.SourceType.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile(self.DATES, "Dates table (CSV: date,path) instead", optional=True,
                                                     fileFilter="CSV (*.csv)"))
        self.model_parameter()
        self.addParameter(QgsProcessingParameterBoolean(self.TEMPORAL_FILTER, "Temporal filter (removes flicker "
                                                        "between dates)", defaultValue=True))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.SWITCH, "Filter: probability of a class change between two dates", QgsProcessingParameterNumber.Type.Double,
            0.02, minValue=0.0001, maxValue=0.5)))
        self.addParameter(advanced(QgsProcessingParameterRasterLayer(self.GRID, "Grid (default: the first date's)",
                                                                     optional=True)))
        self.addParameter(QgsProcessingParameterBoolean(self.SKIP_EXISTING, "Skip dates already done",
                                                        defaultValue=True))
        segment_parameters(self)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"))
        self.addOutput(QgsProcessingOutputFile(self.RECORD, "Series record (series.csv)"))
        self.addOutput(QgsProcessingOutputNumber(self.DONE, "Dates mapped"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.FIRST_MAP, "Map of the first date"))  # for a model's
        self.addOutput(QgsProcessingOutputRasterLayer(self.LAST_MAP, "Map of the last date"))  # Land-cover change

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.change.series import check_filter, filter_folder, read_dates, segment_series, series_dates
        from stars_core.segmentation.infer import open_runner_cached

        cfg = segment_config(self, parameters, context)  # (no minimum mapping unit here: none is read)
        rasters = [raster_path(layer, "SAR raster")
                   for layer in self.parameterAsLayerList(parameters, self.INPUTS, context)]
        dates = read_dates(rasters, self.parameterAsFile(parameters, self.DATES, context) or None)
        grid_layer = self.parameterAsRasterLayer(parameters, self.GRID, context)
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        os.makedirs(folder, exist_ok=True)
        filtered = self.parameterAsBool(parameters, self.TEMPORAL_FILTER, context)
        if filtered and len(series_dates(folder, dates)) < 2:
            feedback.pushInfo("one date: mapped without the temporal filter (it needs two dates or more)")
            filtered = False
        if filtered:  # refused now, not after every date is mapped
            check_filter(folder, dates, self.parameterAsDouble(parameters, self.SWITCH, context))
        runner = open_runner_cached(self.parameterAsFile(parameters, self.MODEL, context), cfg)
        n = len(dates)
        result = segment_series(
            runner, dates, folder, cfg, grid=raster_path(grid_layer, "grid") if grid_layer else None,
            skip_existing=self.parameterAsBool(parameters, self.SKIP_EXISTING, context), probabilities=filtered,
            cancel=feedback.isCanceled, log=feedback.pushInfo, info=feedback.pushInfo,
            progress=lambda k, _n, done, total: feedback.setProgress(100 * (k + done / max(total, 1)) / n))
        maps = dict(result.maps)
        if filtered:
            counts = filter_folder(folder, self.parameterAsDouble(parameters, self.SWITCH, context),
                                   cancel=feedback.isCanceled)
            feedback.pushInfo(f"temporal filter: {counts['changed']:,} of {counts['pixels']:,} date-pixels changed "
                              f"class")
            maps = {d: p.with_name(p.stem + "_filtered.tif") for d, p in maps.items()}
        from ..style import SeriesLayer

        for date, path in maps.items():
            context.addLayerToLoadOnCompletion(str(path), QgsProcessingContext.LayerDetails(
                f"land cover {date}", context.project(), self.OUTPUT_FOLDER))
            context.layerToLoadOnCompletionDetails(str(path)).setPostProcessor(
                SeriesLayer(runner.classes, date, "land cover series", dates=list(maps)))
        days = sorted(maps)
        return {self.OUTPUT_FOLDER: folder, self.RECORD: str(result.record),
                self.DONE: len(result.done) + len(result.skipped),
                self.FIRST_MAP: str(maps[days[0]]) if days else None, self.LAST_MAP: str(maps[days[-1]]) if days else None}
