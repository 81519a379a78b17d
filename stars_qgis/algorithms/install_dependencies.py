"""stars:installdependencies — install PyTorch / ONNX Runtime into this QGIS profile, no terminal."""
from __future__ import annotations

from qgis.core import (QgsApplication, QgsProcessingException, QgsProcessingOutputString, QgsProcessingParameterEnum,
                       QgsProcessingParameterString)

from .base import StarsAlgorithm, advanced

SETS = ["full", "onnx"]
SET_NAMES = ["PyTorch and ONNX Runtime: train and segment (.stars and .onnx models), and get data (STAC)",
             "ONNX Runtime only: segment exported .onnx models"]
BUILDS = ["auto", "cpu", "cuda"]
BUILD_NAMES = ["automatic (CUDA build where an NVIDIA driver is present, else CPU)", "CPU build", "CUDA build"]


class InstallDependencies(StarsAlgorithm):
    PACKAGES = "PACKAGES"
    BUILD = "BUILD"
    PIP_ARGS = "PIP_ARGS"
    RESULT = "RESULT"

    def name(self) -> str:
        return "installdependencies"

    def displayName(self) -> str:  # noqa: N802
        return "Install dependencies"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Installs the Python packages STARS needs (PyTorch, ONNX Runtime, and rasterio where QGIS lacks it) "
            "into a private folder of this QGIS profile, with pip from QGIS's own Python: never into the system "
            "Python and never over QGIS's packages (numpy stays QGIS's). Progress and pip's log appear below; "
            "Cancel stops it and leaves nothing half-installed.<br><br>pip's own configuration applies (index, "
            "proxy, local wheel folder with PIP_FIND_LINKS, constraints). Extra pip arguments go under "
            "Advanced. The CPU build of PyTorch is about 200 MB, the CUDA build several GB."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterEnum(self.PACKAGES, "Packages", SET_NAMES, defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(self.BUILD, "PyTorch build", BUILD_NAMES, defaultValue=0))
        self.addParameter(advanced(QgsProcessingParameterString(
            self.PIP_ARGS, "Extra pip arguments (e.g. --no-index --find-links /path/to/wheels)", optional=True)))
        self.addOutput(QgsProcessingOutputString(self.RESULT, "Result"))

    def required(self, parameters, context) -> tuple[str, ...]:
        return ()  # this is what installs them

    def execute(self, parameters, context, feedback) -> dict:
        from .. import installer

        try:
            extra = installer.pip_arguments(self.parameterAsString(parameters, self.PIP_ARGS, context))
            plan = installer.plan(QgsApplication.qgisSettingsDirPath(),
                                  SETS[self.parameterAsEnum(parameters, self.PACKAGES, context)],
                                  BUILDS[self.parameterAsEnum(parameters, self.BUILD, context)], extra)
            feedback.pushInfo(plan.describe())
            folder = installer.install(plan, progress=feedback.pushInfo, cancel=feedback.isCanceled)
        except installer.InstallCancelled as exc:
            raise QgsProcessingException(f"cancelled: {exc}") from None
        except installer.InstallError as exc:
            raise QgsProcessingException(str(exc)) from None
        message = installer.activate(folder)
        feedback.pushInfo(message)
        return {self.RESULT: message}
