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


class SeriesLayer(PalettedStyle):
    """A map of a series: styled, its date as its fixed temporal range (the Temporal Controller plays
    the series), and moved into one layer-tree group."""

    def __init__(self, classes, date: str, group: str):
        super().__init__(classes)
        self.date, self.group = date, group

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        from qgis.core import Qgis, QgsDateTimeRange
        from qgis.PyQt.QtCore import QDate, QDateTime, QTime

        super().postProcessLayer(layer, context, feedback)
        day = QDate.fromString(self.date, "yyyy-MM-dd")
        props = layer.temporalProperties()
        props.setMode(Qgis.RasterTemporalMode.FixedTemporalRange)  # the scoped name QGIS 3.22 to 4 share
        props.setFixedTemporalRange(QgsDateTimeRange(QDateTime(day, QTime(0, 0)), QDateTime(day, QTime(23, 59, 59))))
        props.setIsActive(True)
        root = context.project().layerTreeRoot()
        node = root.findLayer(layer.id())
        if node is None:
            return
        group = root.findGroup(self.group) or root.insertGroup(0, self.group)
        group.addChildNode(node.clone())
        node.parent().removeChildNode(node)
