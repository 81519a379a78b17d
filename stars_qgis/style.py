"""Class colours and names from a model file, as a QGIS paletted renderer."""
from __future__ import annotations

from qgis.core import QgsPalettedRasterRenderer, QgsProcessingLayerPostProcessorInterface, QgsRasterLayer
from qgis.PyQt.QtGui import QColor


def paletted_renderer(layer: QgsRasterLayer, classes) -> QgsPalettedRasterRenderer:
    entries = [QgsPalettedRasterRenderer.Class(v, QColor(c), n)
               for v, n, c in zip(classes.values, classes.names, classes.colors)]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, entries)


class PalettedStyle(QgsProcessingLayerPostProcessorInterface):
    """Styles an output layer once Processing has loaded it into the project."""

    _keep = []  # Processing does not own post-processors; keep them alive until used

    def __init__(self, classes):
        super().__init__()
        self.classes = classes
        PalettedStyle._keep.append(self)

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if isinstance(layer, QgsRasterLayer):
            layer.setRenderer(paletted_renderer(layer, self.classes))
            layer.triggerRepaint()
