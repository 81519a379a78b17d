"""What every STARS algorithm shares: the icon and group, the dependency check, the bridge from
Processing feedback to the core's progress/cancel/log callables, core errors turned into
QgsProcessingException messages, and the parameters several algorithms take (segmentation
settings, minimum mapping unit, polygon simplification), read into the core's configuration here,
so algorithms share them through this module rather than through each other."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingException,
                       QgsProcessingParameterDefinition, QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterNumber,
                       QgsProcessingParameterString, QgsRasterLayer)
from qgis.PyQt.QtGui import QIcon

from stars_core import config
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
            error = self.in_dialog_terms(str(exc))
        # Raised outside the handlers: the core's exception and its frames (open rasters) must not
        # stay attached as context to an error QGIS keeps past its own shutdown.
        raise QgsProcessingException(error)

    def execute(self, parameters, context, feedback) -> dict:
        raise NotImplementedError

    def in_dialog_terms(self, message: str) -> str:
        """A core message that names command-line flags (--dates, --class-table) names this dialog's
        parameters instead: a flag is its parameter's key in lower case with dashes; a core message
        that already names both ("--class-table on the command line, the 'Class table' parameter in
        QGIS") keeps only the dialog's part."""
        import re

        message = re.sub(r"(?:--[a-z0-9-]+ )?on the command line, (the '[^']+' parameter) in QGIS", r"\1", message)
        for definition in self.parameterDefinitions():
            flag = "--" + definition.name().lower().replace("_", "-")
            message = re.sub(re.escape(flag) + r"(?![\w-])( (?=\d)(\S+))?",
                             lambda m, d=definition.description(): f"the '{d}' parameter"
                             + (f" set to {m.group(2)}" if m.group(2) else ""), message)
        return message

    # -- bridges to the core's callables ----------------------------------------------------
    @staticmethod
    def progress(feedback):
        return lambda done, total: feedback.setProgress(100.0 * done / max(total, 1))

    @staticmethod
    def log(feedback):
        return lambda message: feedback.pushInfo(str(message))


# -- parameters several algorithms share ----------------------------------------------------------
MODEL_FILTER = "STARS model (*.stars *.onnx);;PyTorch model file (*.stars);;Exported ONNX model (*.onnx)"
MODALITIES = ["modality 1 (SAR or DSM): the optical image is missing", "modality 2 (optical)"]


CONNECTIVITY = [8, 4]
CONNECTIVITY_NAMES = ["8 (sides and corners)", "4 (sides only)"]


def mmu_parameters(alg: StarsAlgorithm) -> None:
    """The minimum mapping unit and its connectivity: Segment, Map sheets and Clean land-cover map."""
    alg.addParameter(QgsProcessingParameterString(
        alg.MMU, "Minimum mapping unit (e.g. 0.5ha, 500m2, 12px; empty: none)", optional=True))
    alg.addParameter(advanced(QgsProcessingParameterEnum(alg.CONNECTIVITY, "Patch connectivity", CONNECTIVITY_NAMES,
                                                         defaultValue=0)))


def mmu_setting(alg: StarsAlgorithm, parameters, context) -> dict:
    text = (alg.parameterAsString(parameters, alg.MMU, context) or "").strip()
    return {"mmu": text or None,
            "mmu_connectivity": CONNECTIVITY[alg.parameterAsEnum(parameters, alg.CONNECTIVITY, context)]}


WEIGHTS = list(config.WEIGHTS)
WEIGHT_NAMES = ["best: of its validation (its last where it kept no best)", "last: of its last training step"]
RUNTIMES = list(config.RUNTIMES)  # the order of RUNTIME_NAMES
RUNTIME_NAMES = ["auto: int8 export on a CPU (fastest), PyTorch on CUDA",
                 "torch: eager PyTorch (the reference)",
                 "onnx: fp32 export (about 1.2x PyTorch, the same map up to rounding)",
                 "int8: quantised export (3-5x by CPU, a few near-tie pixels change class)"]
RUNTIME_HELP = ("<br><br>Runtime 'auto': on a CPU the model's int8 export (made once and cached beside the model "
                "file; 3-5x faster than PyTorch, a few near-tied pixels change class, the log says how many), on CUDA "
                "PyTorch. Help has the details.")


def simplify_parameter(alg: StarsAlgorithm) -> None:
    """The outline tolerance: Segment's polygon output and Land-cover map to polygons."""
    alg.addParameter(advanced(QgsProcessingParameterString(
        alg.SIMPLIFY, "Simplify polygon outlines to (e.g. 1px, 15m; empty: along the pixels)", optional=True)))


def simplify_setting(alg: StarsAlgorithm, parameters, context) -> str | None:
    return (alg.parameterAsString(parameters, alg.SIMPLIFY, context) or "").strip() or None


def load_polygons(context, path: str, output: str) -> None:
    context.addLayerToLoadOnCompletion(f"{path}|layername=landcover", QgsProcessingContext.LayerDetails(
        "land-cover polygons", context.project(), output))


def segment_parameters(alg: StarsAlgorithm) -> None:
    """Runtime, tile size, overlap, batch size and device: shared with the map-sheet algorithm."""
    num = QgsProcessingParameterNumber.Type.Integer
    alg.addParameter(QgsProcessingParameterEnum(alg.RUNTIME, "Runtime", RUNTIME_NAMES, defaultValue=0))
    alg.addParameter(advanced(QgsProcessingParameterNumber(
        alg.TILE_SIZE, "Tile size (pixels, multiple of 32; empty: the model's training chip size)", num, None,
        optional=True, minValue=32)))
    alg.addParameter(advanced(QgsProcessingParameterNumber(
        alg.OVERLAP, "Tile overlap (pixels; empty: an eighth of the tile, at least 32)", num, None, optional=True, minValue=0)))
    alg.addParameter(advanced(QgsProcessingParameterNumber(
        alg.BATCH_SIZE, "Tiles per batch (empty: 1 on CPU, 4 on CUDA)", num, None, optional=True, minValue=1)))
    alg.addParameter(advanced(QgsProcessingParameterEnum(alg.DEVICE, "Device", DEVICES, defaultValue=0)))
    alg.addParameter(advanced(QgsProcessingParameterEnum(alg.WEIGHTS, "Weights of a model trained with 'keep the "
                                                         "best'", WEIGHT_NAMES, defaultValue=0)))


class SegmentingAlgorithm(StarsAlgorithm):
    """What the segmenting algorithms (Segment with missing modality, Segment map sheets, Segment a SAR
    time series) share, declared once: the model file, the engine and tiling parameters and the
    minimum mapping unit, under the same keys, and what a run with the chosen model needs."""

    MODEL = "MODEL"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    BATCH_SIZE = "BATCH_SIZE"
    DEVICE = "DEVICE"
    RUNTIME = "RUNTIME"
    WEIGHTS = "WEIGHTS"
    MMU = "MMU"
    CONNECTIVITY = "CONNECTIVITY"

    def required(self, parameters, context) -> tuple[str, ...]:
        return model_requirements(self, parameters, context)

    def model_parameter(self) -> None:
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, "STARS model file (.stars, or .onnx exported by 'Export to ONNX': no PyTorch needed)",
            fileFilter=MODEL_FILTER))


def model_requirements(alg: StarsAlgorithm, parameters, context) -> tuple[str, ...]:
    """What segmenting with the chosen model file needs: ONNX Runtime for .onnx, else PyTorch."""
    from .. import deps

    model = alg.parameterAsFile(parameters, alg.MODEL, context) or ""
    return deps.ONNX_REQUIRED if model.lower().endswith(".onnx") else deps.REQUIRED


def segment_config(alg: StarsAlgorithm, parameters, context, **extra):
    from stars_core.config import SegmentConfig

    def optional(key: str) -> int | None:  # left empty: SegmentConfig's default
        return None if parameters.get(key) in (None, "") else alg.parameterAsInt(parameters, key, context)

    return SegmentConfig(
        tile_size=optional(alg.TILE_SIZE),
        overlap=optional(alg.OVERLAP), batch_size=optional(alg.BATCH_SIZE),
        device=DEVICES[alg.parameterAsEnum(parameters, alg.DEVICE, context)],
        runtime=RUNTIMES[alg.parameterAsEnum(parameters, alg.RUNTIME, context)],
        weights=WEIGHTS[alg.parameterAsEnum(parameters, alg.WEIGHTS, context)],
        **mmu_setting(alg, parameters, context), **extra,
    )


# -- getting data (stars:getsentinelpair, stars:getsentinelseries) ---------------------------------
ORBITS = ["both", "ascending", "descending"]
ORBIT_NAMES = ["both directions", "ascending only", "descending only (one viewing geometry: no spurious change)"]


class FetchingAlgorithm(StarsAlgorithm):
    """What the two fetch algorithms (Get Sentinel-1 and Sentinel-2 for an area, Get a Sentinel-1
    series for an area) share, declared once: the area, dates, catalogue, orbit, size limit and
    network keys (`fetch_parameters`), the output folder, and what a run needs (no PyTorch; a missing
    pystac-client is said by the core, with the command that installs it)."""

    AOI = "AOI"
    START = "START"
    END = "END"
    ORBIT = "ORBIT"
    MAX_GB = "MAX_GB"
    DRY_RUN = "DRY_RUN"
    STAC_URL = "STAC_URL"
    SAR_COLLECTION = "SAR_COLLECTION"
    RES = "RES"
    RETRIES = "RETRIES"
    TIMEOUT = "TIMEOUT"
    CACHE = "CACHE"
    NO_CACHE = "NO_CACHE"
    RELATIVE_ORBIT = "RELATIVE_ORBIT"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"

    def required(self, parameters, context) -> tuple[str, ...]:
        return ("numpy", "rasterio")

    def run_fetch(self, kind: str, cfg, parameters, context, feedback) -> tuple[Path, dict | None]:
        """`stars fetch KIND` of `cfg` into the dialog's output folder, with its log, progress and
        cancel: the folder and the fetch's record, or None after a dry run (said in the log)."""
        from stars_core.fetch.run import fetch

        out = Path(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context))
        dry = self.parameterAsBool(parameters, self.DRY_RUN, context)
        done = fetch(kind, cfg, out, dry_run=dry, log=feedback.pushInfo, progress=self.progress(feedback),
                     cancel=feedback.isCanceled)
        if dry:
            feedback.pushInfo("dry run: nothing read or written")
            return out, None
        return out, done


def fetch_parameters(alg: StarsAlgorithm) -> None:
    """The area, the dates, the catalogue, the orbit (direction and relative orbits) and the size limit:
    both fetch algorithms."""
    from qgis.core import QgsProcessingParameterBoolean, QgsProcessingParameterDateTime, QgsProcessingParameterExtent

    num = QgsProcessingParameterNumber.Type
    alg.addParameter(QgsProcessingParameterExtent(alg.AOI, "Area of interest (draw it, or take a layer's extent)"))
    for key, what in ((alg.START, "First date"), (alg.END, "Last date (inclusive)")):
        alg.addParameter(QgsProcessingParameterDateTime(key, what, QgsProcessingParameterDateTime.Type.Date))
    alg.addParameter(QgsProcessingParameterEnum(alg.ORBIT, "Sentinel-1 orbit direction", ORBIT_NAMES,
                                                defaultValue=0))
    alg.addParameter(QgsProcessingParameterNumber(alg.MAX_GB, "Refuse to read more than (GB)", num.Double, 2.0,
                                                  minValue=0.0001))
    alg.addParameter(QgsProcessingParameterBoolean(alg.DRY_RUN, "Only list what would be read (dry run)",
                                                   defaultValue=False))
    alg.addParameter(advanced(QgsProcessingParameterString(
        alg.STAC_URL, "Another STAC API with the same kind of items (empty: each source's own)", optional=True)))
    alg.addParameter(collection_parameter(alg.SAR_COLLECTION, "Sentinel-1"))
    alg.addParameter(advanced(QgsProcessingParameterNumber(alg.RES, "Pixel size (metres)", num.Double, 10.0,
                                                           minValue=0.1)))
    alg.addParameter(advanced(QgsProcessingParameterNumber(alg.RETRIES, "Retries of a busy host", num.Integer, 5,
                                                           minValue=0)))
    alg.addParameter(advanced(QgsProcessingParameterNumber(alg.TIMEOUT, "Seconds a read may wait for the host",
                                                           num.Integer, 60, minValue=1)))
    alg.addParameter(advanced(QgsProcessingParameterFile(
        alg.CACHE, "Cache folder (empty: the STARS cache in the QGIS profile)",
        behavior=QgsProcessingParameterFile.Behavior.Folder, optional=True)))
    alg.addParameter(advanced(QgsProcessingParameterBoolean(alg.NO_CACHE, "Keep nothing between runs (no cache)",
                                                            defaultValue=False)))
    alg.addParameter(advanced(QgsProcessingParameterString(
        alg.RELATIVE_ORBIT, "Only these Sentinel-1 relative orbits, e.g. 117 or 117,168 (empty: any; the dry run "
        "lists each item's)", optional=True)))


def collection_parameter(key: str, what: str) -> QgsProcessingParameterString:
    """An advanced, optional collection name for one role (empty: its source's own collection)."""
    return advanced(QgsProcessingParameterString(
        key, f"Another {what} collection with the same kind of items (empty: the catalogue's own)", optional=True))


def collection_name(alg: StarsAlgorithm, parameters, key: str, context) -> str | None:
    return (alg.parameterAsString(parameters, key, context) or "").strip() or None


def _date(alg: StarsAlgorithm, parameters, key: str, context) -> str:
    value = parameters.get(key)
    if isinstance(value, str):  # as typed in a model or qgis_process: checked by the core
        return value.strip()
    day = alg.parameterAsDateTime(parameters, key, context).date()
    return day.toString("yyyy-MM-dd") if day.isValid() else ""


def qgis_proxy() -> tuple[str | None, str]:
    """The proxy of QGIS's network settings (Settings > Options > Network) as a URL, and the hosts
    excluded from it; (None, "") when QGIS uses none (the system's then reaches us through the
    environment)."""
    from urllib.parse import quote, urlparse

    from qgis.core import QgsNetworkAccessManager
    from qgis.PyQt.QtNetwork import QNetworkProxy

    manager = QgsNetworkAccessManager.instance()
    proxy = manager.fallbackProxy()
    schemes = {QNetworkProxy.ProxyType.HttpProxy: "http", QNetworkProxy.ProxyType.HttpCachingProxy: "http",
               QNetworkProxy.ProxyType.Socks5Proxy: "socks5h"}
    scheme = schemes.get(proxy.type())
    if scheme is None or not proxy.hostName():
        return None, ""
    user = f"{quote(proxy.user())}:{quote(proxy.password())}@" if proxy.user() else ""
    hosts = [urlparse(u).hostname or u for u in list(manager.excludeList()) + list(manager.noProxyList()) if u]
    return f"{scheme}://{user}{proxy.hostName()}:{proxy.port()}", ",".join(hosts)


def fetch_config(alg: StarsAlgorithm, parameters, context, feedback, **extra):
    """The core's FetchConfig from the dialog: the extent in its own CRS, QGIS's proxy."""
    from stars_core.fetch.run import FetchConfig

    box = alg.parameterAsExtent(parameters, alg.AOI, context)
    crs = alg.parameterAsExtentCrs(parameters, alg.AOI, context)
    if box.isNull() or box.isEmpty():
        raise QgsProcessingException("the 'Area of interest' is empty: draw an area or take a layer's extent")
    proxy, no_proxy = qgis_proxy()
    if proxy:
        feedback.pushInfo(f"network: through the proxy {proxy.split('@')[-1].split('://')[-1]} of QGIS's settings "
                          f"(Settings > Options > Network)")
    stac_url = (alg.parameterAsString(parameters, alg.STAC_URL, context) or "").strip() or None
    return FetchConfig(
        aoi=f"{box.xMinimum()!r},{box.yMinimum()!r},{box.xMaximum()!r},{box.yMaximum()!r}",
        aoi_crs=(crs.authid() or crs.toWkt()) if crs.isValid() else None,
        start=_date(alg, parameters, alg.START, context), end=_date(alg, parameters, alg.END, context),
        orbit=ORBITS[alg.parameterAsEnum(parameters, alg.ORBIT, context)],
        max_gb=alg.parameterAsDouble(parameters, alg.MAX_GB, context),
        res=alg.parameterAsDouble(parameters, alg.RES, context), stac_url=stac_url,
        sar_collection=collection_name(alg, parameters, alg.SAR_COLLECTION, context),
        retries=alg.parameterAsInt(parameters, alg.RETRIES, context),
        timeout=alg.parameterAsInt(parameters, alg.TIMEOUT, context), proxy=proxy, no_proxy=no_proxy,
        cache=alg.parameterAsFile(parameters, alg.CACHE, context) or None,
        no_cache=alg.parameterAsBool(parameters, alg.NO_CACHE, context),
        relative_orbit=(alg.parameterAsString(parameters, alg.RELATIVE_ORBIT, context) or "").strip() or None, **extra)

