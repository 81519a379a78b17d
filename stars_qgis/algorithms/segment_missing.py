"""stars:segmentmissingmodality — classify a raster of one modality with a trained model."""
from __future__ import annotations

from qgis.core import (QgsProcessing, QgsProcessingParameterExtent,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterBoolean, QgsProcessingParameterEnum,
                       QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterRasterLayer)

from .base import (MODALITIES, RUNTIME_HELP, advanced, load_polygons, mmu_parameters, polygon_file, raster_path,
                   segment_config, segment_parameters, SegmentingAlgorithm, simplify_parameter, simplify_setting)

class SegmentMissingModality(SegmentingAlgorithm):
    INPUT = "INPUT"
    MODALITY = "MODALITY"
    WITH_M2 = "WITH_M2"
    RESAMPLE = "RESAMPLE"
    OUTPUT = "OUTPUT"
    CONFIDENCE = "CONFIDENCE"
    PROBABILITIES = "PROBABILITIES"
    EXTENT = "EXTENT"
    MASK = "MASK"
    UNCERTAINTY = "UNCERTAINTY"
    POLYGONS = "POLYGONS"
    SIMPLIFY = "SIMPLIFY"

    def name(self) -> str:
        return "segmentmissingmodality"

    def displayName(self) -> str:  # noqa: N802
        return "Segment with missing modality"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Classifies a raster of one modality, usually SAR (or DSM) where no optical image exists, with "
            "a model made by 'Train STARS'. The band order, normalisation and class table come from the model "
            "file. The raster is processed in overlapping tiles, blended without seams, so any size works; "
            "no-data pixels stay no-data.<br><br>The output is a GeoTIFF on the input grid with the class "
            "colours and names of the model; it is added to the project with that legend. The optional "
            "confidence raster holds the probability of the chosen class.<br><br>Advanced: give the optical "
            "raster too to use both modalities; set the input to modality 2 to segment optical alone; "
            "'resample' segments at the model's pixel size when the input's differs." + RUNTIME_HELP
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster (the available modality)"))
        self.model_parameter()
        self.addParameter(advanced(QgsProcessingParameterEnum(self.MODALITY, "The input raster is", MODALITIES, defaultValue=0)))
        self.addParameter(advanced(QgsProcessingParameterRasterLayer(
            self.WITH_M2, "Optical raster of the same area (optional: use both modalities)", optional=True)))
        self.addParameter(advanced(QgsProcessingParameterBoolean(
            self.RESAMPLE, "Resample to the model's pixel size when it differs", defaultValue=False)))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Extent (empty: the whole raster)", optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.MASK, "Mask polygons (outside them: no data)", [QgsProcessing.SourceType.TypeVectorPolygon],
            optional=True))
        mmu_parameters(self)
        segment_parameters(self)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Land-cover map"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.CONFIDENCE, "Confidence (probability of the chosen class)", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.PROBABILITIES, "Class probabilities (one band per class)", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.UNCERTAINTY, "Uncertainty (normalised entropy and top-1 minus top-2 margin)", optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.POLYGONS, "Land-cover polygons (after the minimum mapping unit)", fileFilter="GeoPackage (*.gpkg)",
            optional=True, createByDefault=False))
        simplify_parameter(self)

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.segmentation.infer import open_runner_cached, segment_area

        from ..style import PalettedStyle

        cfg = segment_config(self, parameters, context,
                             modality=1 + self.parameterAsEnum(parameters, self.MODALITY, context),
                             resample=self.parameterAsBool(parameters, self.RESAMPLE, context))
        source = raster_path(self.parameterAsRasterLayer(parameters, self.INPUT, context), "input raster")
        m2_layer = self.parameterAsRasterLayer(parameters, self.WITH_M2, context)
        with_m2 = raster_path(m2_layer, "optical raster") if m2_layer is not None else None
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        conf = self.parameterAsOutputLayer(parameters, self.CONFIDENCE, context) or None
        probs = self.parameterAsOutputLayer(parameters, self.PROBABILITIES, context) or None
        unc = self.parameterAsOutputLayer(parameters, self.UNCERTAINTY, context) or None
        loaded = open_runner_cached(self.parameterAsFile(parameters, self.MODEL, context), cfg)
        extent, extent_crs = None, None
        if parameters.get(self.EXTENT) not in (None, ""):
            box = self.parameterAsExtent(parameters, self.EXTENT, context)
            if not box.isNull() and not box.isEmpty():
                extent = (box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum())
                crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
                extent_crs = crs.toWkt() if crs.isValid() else None
        mask = polygon_file(self, parameters, self.MASK, context, feedback)  # the selected features, if so asked
        result = segment_area(loaded, source, out, cfg, extent=extent, extent_crs=extent_crs, mask=mask,
                              with_m2=with_m2, confidence=conf, probabilities=probs, uncertainty=unc,
                              progress=self.progress(feedback), cancel=feedback.isCanceled,
                              log=lambda m: feedback.pushWarning(m), info=feedback.pushInfo)
        feedback.pushInfo(result.runtime_note)
        total = max(1, sum(result.class_pixels.values()))
        feedback.pushInfo(f"{result.width} x {result.height} pixels, {result.tiles} tiles, {result.seconds:.1f} s "
                          f"on {result.device}: " + ", ".join(f"{n} {100 * c / total:.1f}%"
                                                              for n, c in result.class_pixels.items()))
        if context.willLoadLayerOnCompletion(out):
            context.layerToLoadOnCompletionDetails(out).setPostProcessor(PalettedStyle(loaded.classes))
        outputs = {self.OUTPUT: out}
        for key, path in ((self.CONFIDENCE, conf), (self.PROBABILITIES, probs), (self.UNCERTAINTY, unc)):
            if path:  # styled as grey ramps by the .qml written beside each
                outputs[key] = path
        polygons = self.parameterAsFileOutput(parameters, self.POLYGONS, context) or None
        if polygons:
            from stars_core.product.polygons import polygonize

            made = polygonize(out, polygons, connectivity=cfg.mmu_connectivity, cancel=feedback.isCanceled,
                              log=feedback.pushInfo, simplify=simplify_setting(self, parameters, context))
            load_polygons(context, polygons, self.POLYGONS)
            feedback.pushInfo(f"{made['polygons']:,} polygons in {polygons}")
            outputs[self.POLYGONS] = polygons
        return outputs
