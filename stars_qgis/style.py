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
        if isinstance(layer, QgsRasterLayer) and self.classes is not None:  # None: the layer's own style
            layer.setRenderer(paletted_renderer(layer, self.classes))
            layer.triggerRepaint()


def day_range(date: str):
    """The QgsDateTimeRange of one day ("yyyy-MM-dd"): 00:00:00 to 23:59:59."""
    from qgis.core import QgsDateTimeRange
    from qgis.PyQt.QtCore import QDate, QDateTime, QTime

    day = QDate.fromString(date, "yyyy-MM-dd")
    return QgsDateTimeRange(QDateTime(day, QTime(0, 0)), QDateTime(day, QTime(23, 59, 59)))


def _irregular_step():
    """The "source timestamps" time-step unit: Qgis.TemporalUnit.IrregularStep since QGIS 3.30,
    QgsUnitTypes.TemporalIrregularStep before (QGIS 3.22 has only that one)."""
    from qgis.core import Qgis, QgsUnitTypes

    unit = getattr(Qgis, "TemporalUnit", None)
    return unit.IrregularStep if unit is not None else QgsUnitTypes.TemporalUnit.TemporalIrregularStep


def play_dates(project, dates, controller=None) -> None:
    """Set the project's animation to a series of `dates` ("yyyy-MM-dd"): its temporal range from the
    first day to the last, and frames at the layers' own dates ("source timestamps": one date per
    frame, whatever the gaps; the default step of one hour gives 888 frames for 4 dates 12 days
    apart). `controller`, the map canvas's temporal navigation in QGIS with a window, is set the same
    way at once; the project's settings are what QGIS reads when the project is opened again."""
    from qgis.core import QgsDateTimeRange, QgsInterval

    days = [day_range(d) for d in sorted(set(dates))]
    if not days:
        return
    span = QgsDateTimeRange(days[0].begin(), days[-1].end())
    settings = project.timeSettings()
    settings.setTimeStepUnit(_irregular_step())
    settings.setTimeStep(1)
    settings.setTemporalRange(span)
    if controller is not None and hasattr(controller, "setAvailableTemporalRanges"):
        controller.setTemporalExtents(span)
        controller.setAvailableTemporalRanges(days)
        controller.setFrameDuration(QgsInterval(1, _irregular_step()))
        controller.setCurrentFrameNumber(0)


def _canvas_controller():
    """The map canvas's temporal controller (the Temporal Controller panel's), or None (no window)."""
    try:
        from qgis.utils import iface
    except ImportError:
        return None
    canvas = iface.mapCanvas() if iface is not None else None
    return canvas.temporalController() if canvas is not None else None


class SeriesLayer(PalettedStyle):
    """A map of a series (or, `classes` None, an image of one, left in its own style): styled, its
    date as its fixed temporal range, moved into one layer-tree group; the project's animation is set
    to the series' `dates` (`play_dates`), so the Temporal Controller plays it one date per frame."""

    def __init__(self, classes, date: str, group: str, dates=()):
        super().__init__(classes)
        self.date, self.group, self.dates = date, group, tuple(dates) or (date,)

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        from qgis.core import Qgis

        super().postProcessLayer(layer, context, feedback)
        props = layer.temporalProperties()
        props.setMode(Qgis.RasterTemporalMode.FixedTemporalRange)  # the scoped name QGIS 3.22 to 4 share
        props.setFixedTemporalRange(day_range(self.date))
        props.setIsActive(True)
        play_dates(context.project(), self.dates, _canvas_controller())
        root = context.project().layerTreeRoot()
        node = root.findLayer(layer.id())
        if node is None:
            return
        group = root.findGroup(self.group) or root.insertGroup(0, self.group)
        group.addChildNode(node.clone())
        node.parent().removeChildNode(node)
