"""What every STARS algorithm shares: the icon and group, the dependency check, the bridge from
Processing feedback to the core's progress/cancel/log callables, and core errors turned into
QgsProcessingException messages."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingParameterDefinition,
                       QgsRasterLayer)
from qgis.PyQt.QtGui import QIcon

from stars_core.devices import DEVICES as RUNTIME_DEVICES

from .. import deps

ICON = Path(__file__).resolve().parents[2] / "resources" / "icon.svg"
if not ICON.is_file():  # packaged plugin: resources/ sits inside the plugin folder
    ICON = Path(__file__).resolve().parents[1] / "resources" / "icon.svg"

DEVICES = list(RUNTIME_DEVICES)  # the dialogs list them in the core's order


def advanced(param: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    param.setFlags(param.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    return param


def raster_path(layer: QgsRasterLayer, what: str) -> str:
    """The file behind a raster layer (GDAL provider), or a clear error."""
    if layer is None:
        raise QgsProcessingException(f"{what}: no raster layer given")
    if layer.providerType() != "gdal":
        raise QgsProcessingException(f"{what}: layer '{layer.name()}' is not a file raster (provider "
                                     f"{layer.providerType()}); save it as a GeoTIFF first")
    return layer.source().split("|")[0]


def polygon_file(alg, parameters, name: str, context, feedback=None) -> str | None:
    """A single-layer file the core can read holding the polygons the user chose: with "Selected
    features only" ticked, the selection; with a layer filter, the filtered features (QGIS exports
    them to a temporary GeoPackage); else the layer's own file. None when the input is empty."""
    if parameters.get(name) in (None, ""):
        return None
    if feedback is None:  # QGIS 3.22 crashes when it exports a filtered layer without a feedback object
        from qgis.core import QgsProcessingFeedback

        feedback = QgsProcessingFeedback()
    path, layer_name = alg.parameterAsCompatibleSourceLayerPathAndLayerName(parameters, name, context, ["gpkg", "shp"],
                                                                            "gpkg", feedback)
    if not path:
        return None
    if layer_name:
        from osgeo import gdal, ogr

        ds = ogr.Open(path)
        single = ds is not None and ds.GetLayerCount() == 1
        ds = None
        if not single:  # one layer of a multi-layer file: copied alone, for the core reads layer 0
            from qgis.core import QgsProcessingUtils

            out = QgsProcessingUtils.generateTempFilename(f"{layer_name}.gpkg")
            if gdal.VectorTranslate(out, path, layers=[layer_name], format="GPKG") is None:
                raise QgsProcessingException(f"could not read layer {layer_name!r} of {path}")
            return out
    return path


def integers(text: str, what: str) -> list[int]:
    """'0, 255' -> [0, 255] (commas or semicolons), or a clear error."""
    try:
        return [int(v) for v in (text or "").replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise QgsProcessingException(f"{what} must be integers separated by commas, got {text!r}") from None


class StarsAlgorithm(QgsProcessingAlgorithm):
    """Subclasses define name/displayName/help, initAlgorithm and execute(parameters, context, feedback)."""

    def createInstance(self):  # noqa: N802
        return type(self)()

    def group(self) -> str:
        return ""

    def groupId(self) -> str:  # noqa: N802
        return ""

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def helpUrl(self) -> str:  # noqa: N802
        from ..help import help_url

        return help_url(self.name())

    def required(self, parameters, context) -> tuple[str, ...]:
        """Python packages this run needs (segmenting with a .onnx model needs no PyTorch)."""
        return deps.REQUIRED

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        absent = deps.missing(self.required(parameters, context))
        if absent:
            raise QgsProcessingException(deps.explain(absent))
        from stars_core import threads
        from stars_core.errors import Cancelled, StarsError, TrainingError

        from .. import THREADS_NOTE
        from ..settings import threads_setting

        # QGIS draws in this process, where the load probe cannot tell its threads from ours: on 4 or
        # more cores one is left to the interface.
        cores = threads.available_cores()
        threads.configure(threads_setting() or "auto", reserve=1 if cores >= 4 else 0, settle=0.1,
                          say=feedback.pushWarning)
        feedback.pushInfo(threads.describe() + (f" ({THREADS_NOTE})" if THREADS_NOTE else ""))
        try:
            return self.execute(parameters, context, feedback)
        except Cancelled as exc:
            error = f"cancelled: {exc}"
        except TrainingError as exc:
            error = f"training failed: {exc}"
        except (StarsError, ValueError, FileNotFoundError) as exc:
            error = str(exc)
        # Raised outside the handlers: the core's exception and its frames (open rasters) must not
        # stay attached as context to an error QGIS keeps past its own shutdown.
        raise QgsProcessingException(error)

    def execute(self, parameters, context, feedback) -> dict:
        raise NotImplementedError

    # -- bridges to the core's callables ----------------------------------------------------
    @staticmethod
    def progress(feedback):
        return lambda done, total: feedback.setProgress(100.0 * done / max(total, 1))

    @staticmethod
    def log(feedback):
        return lambda message: feedback.pushInfo(str(message))
