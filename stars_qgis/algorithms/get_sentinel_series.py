"""stars:getsentinelseries — one Sentinel-1 raster per acquisition day for an area, from a STAC
catalogue, on one grid, loaded as a temporal group, ready for *Segment a SAR time series*."""
from __future__ import annotations

from qgis.core import (QgsProcessingContext, QgsProcessingOutputFile, QgsProcessingOutputNumber,
                       QgsProcessingParameterFolderDestination)

from .base import FetchingAlgorithm, fetch_config, fetch_parameters


class GetSentinelSeries(FetchingAlgorithm):
    DATES = "DATES"
    COUNT = "COUNT"

    def name(self) -> str:
        return "getsentinelseries"

    def displayName(self) -> str:  # noqa: N802
        return "Get a Sentinel-1 series for an area"

    def shortHelpString(self) -> str:  # noqa: N802
        return ("Searches a STAC catalogue (Microsoft Planetary Computer's sentinel-1-rtc by default) for the area "
                "and dates, says what it would read in the log, refuses more than the size limit, then writes one "
                "Sentinel-1 raster in dB per acquisition day (same-day slices mosaicked; a day with both orbit "
                "directions keeps the one covering more of the area) on one grid, and dates.csv, which Segment a "
                "SAR time series takes as its dates table. The rasters enter the project as one group, each with "
                "its date, for the Temporal Controller. Mixing ascending and descending orbits makes spurious "
                "change: choose one direction (and, under Advanced, one relative orbit) for change mapping; a "
                "series that mixes them is warned about. A rerun reads only the dates missing or made otherwise "
                "(another area, pixel size, orbit or slices: said in the log); QGIS's proxy settings are used.")

    def initAlgorithm(self, config=None):  # noqa: N802
        fetch_parameters(self)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"))
        self.addOutput(QgsProcessingOutputFile(self.DATES, "Dates table (dates.csv)"))
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, "Dates"))

    def execute(self, parameters, context, feedback) -> dict:
        cfg = fetch_config(self, parameters, context, feedback)
        out, done = self.run_fetch("series", cfg, parameters, context, feedback)
        if done is None:
            return {self.OUTPUT_FOLDER: str(out), self.COUNT: 0}
        record = done["facts"]
        for note in record["notes"]:
            feedback.pushWarning(note)
        dates = sorted(record["coverage"])
        for date in dates:
            feedback.pushInfo(f"{date}: covers {record['coverage'][date]:.0%} of the grid"
                              + (" (kept from an earlier run)" if date in record["kept"] else "")
                              + (f" (made again: {record['remade'][date]})" if date in record["remade"] else ""))
        self._load(context, out, dates)
        return {self.OUTPUT_FOLDER: str(out), self.DATES: str(out / "dates.csv"), self.COUNT: len(dates)}

    def _load(self, context, out, dates) -> None:
        """Each date into one layer group with its date as its temporal range (Temporal Controller)."""
        from ..style import SeriesLayer

        for date in dates:
            path = str(out / f"S1_{date}.tif")
            context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails(
                f"Sentinel-1 {date}", context.project(), self.OUTPUT_FOLDER))
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(
                SeriesLayer(None, date, "Sentinel-1 series", dates=dates))
