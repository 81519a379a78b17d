"""stars:getsentinelpair — Sentinel-1, a cloud-free Sentinel-2 composite and land-cover labels for an
area, from STAC catalogues, on one grid, ready for *Train STARS*."""
from __future__ import annotations

from qgis.core import (QgsProcessingContext, QgsProcessingOutputFile, QgsProcessingOutputRasterLayer,
                       QgsProcessingParameterEnum, QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterNumber)

from .base import (FetchingAlgorithm, advanced, collection_name, collection_parameter, fetch_config,
                   fetch_parameters)

RASTERS = (("SAR", "sar.tif", "Sentinel-1 VV, VH (dB, median)"),
           ("OPTICAL", "optical.tif", "Sentinel-2 B, G, R, NIR (clear-look median)"),
           ("CLEAR", "clear.tif", "Sentinel-2 clear looks per pixel"),
           ("LABELS", "labels.tif", "Land-cover labels"))


def _names(role: str) -> list[str]:
    from stars_core.fetch.sources import SOURCES

    return [n for n, s in SOURCES.items() if s.role == role]


class GetSentinelPair(FetchingAlgorithm):
    OPTICAL_SOURCE = "OPTICAL_SOURCE"
    LABELS_SOURCE = "LABELS_SOURCE"
    OPTICAL_COLLECTION = "OPTICAL_COLLECTION"
    LABELS_COLLECTION = "LABELS_COLLECTION"
    MIN_LABEL_COVERAGE = "MIN_LABEL_COVERAGE"
    MAX_CLOUD = "MAX_CLOUD"
    MIN_CLEAR = "MIN_CLEAR"
    CLASS_TABLE = "CLASS_TABLE"
    PROVENANCE = "PROVENANCE"

    def name(self) -> str:
        return "getsentinelpair"

    def displayName(self) -> str:  # noqa: N802
        return "Get Sentinel-1 and Sentinel-2 for an area"

    def shortHelpString(self) -> str:  # noqa: N802
        return ("Searches STAC catalogues (Microsoft Planetary Computer by default: no account) for the area and "
                "dates, says what it would read (items, dates, orbits, cloud cover, megabytes) in the log, refuses "
                "more than the size limit, then reads only the windows over the area onto one grid (the UTM zone of "
                "the area's centre, 10 m): a Sentinel-1 median in dB, a cloud-masked Sentinel-2 median with its "
                "clear-look count, land-cover labels (ESA WorldCover by default) with their class table, and "
                "provenance.json (the API, items, dates, licences). The outputs are what Train STARS takes. QGIS's "
                "proxy settings are used. A dry run reads no pixel.")

    def initAlgorithm(self, config=None):  # noqa: N802
        fetch_parameters(self)
        self.addParameter(QgsProcessingParameterEnum(self.OPTICAL_SOURCE, "Sentinel-2 catalogue", _names("optical"),
                                                     defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(self.LABELS_SOURCE, "Land-cover labels", _names("labels"),
                                                     defaultValue=0))
        self.addParameter(collection_parameter(self.OPTICAL_COLLECTION, "Sentinel-2"))
        self.addParameter(collection_parameter(self.LABELS_COLLECTION, "land-cover"))
        num = QgsProcessingParameterNumber.Type
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.MIN_LABEL_COVERAGE, "Share of the area the labels must cover (else refused; 1: all)", num.Double,
            1.0, minValue=0, maxValue=1)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.MAX_CLOUD, "Skip Sentinel-2 scenes cloudier than (%)", num.Double, 60.0, minValue=0, maxValue=100)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.MIN_CLEAR, "Clear Sentinel-2 looks a pixel needs (else no data)", num.Integer, 1, minValue=1)))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"))
        for key, _file, what in RASTERS:
            self.addOutput(QgsProcessingOutputRasterLayer(key, what))
        self.addOutput(QgsProcessingOutputFile(self.CLASS_TABLE, "Class table of the labels (classes.csv)"))
        self.addOutput(QgsProcessingOutputFile(self.PROVENANCE, "Provenance (provenance.json)"))

    def execute(self, parameters, context, feedback) -> dict:
        cfg = fetch_config(self, parameters, context, feedback,
                           optical_source=_names("optical")[self.parameterAsEnum(parameters, self.OPTICAL_SOURCE,
                                                                                  context)],
                           labels_source=_names("labels")[self.parameterAsEnum(parameters, self.LABELS_SOURCE,
                                                                                context)],
                           max_cloud=self.parameterAsDouble(parameters, self.MAX_CLOUD, context),
                           min_clear=self.parameterAsInt(parameters, self.MIN_CLEAR, context),
                           optical_collection=collection_name(self, parameters, self.OPTICAL_COLLECTION, context),
                           labels_collection=collection_name(self, parameters, self.LABELS_COLLECTION, context),
                           min_label_coverage=self.parameterAsDouble(parameters, self.MIN_LABEL_COVERAGE, context))
        out, done = self.run_fetch("pair", cfg, parameters, context, feedback)
        if done is None:
            return {self.OUTPUT_FOLDER: str(out)}
        facts = done["facts"]
        feedback.pushInfo(f"optical: {facts['optical_clear_fraction']:.0%} of the pixels have at least "
                          f"{cfg.min_clear} clear look(s); labels cover {facts['labels_covered_fraction']:.0%}")
        self._load(context, out)
        return {self.OUTPUT_FOLDER: str(out), **{key: str(out / name) for key, name, _ in RASTERS},
                self.CLASS_TABLE: str(out / "classes.csv"), self.PROVENANCE: str(out / "provenance.json")}

    def _load(self, context, out) -> None:
        """The rasters into the project, the labels styled with their class table."""
        from stars_core.classes import ClassTable

        from ..style import PalettedStyle

        for key, name, what in RASTERS:
            path = str(out / name)
            context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails(what, context.project(), key))
            if key == "LABELS":
                context.layerToLoadOnCompletionDetails(path).setPostProcessor(
                    PalettedStyle(ClassTable.from_file(out / "classes.csv")))
