"""Write a QGIS project (.qgz) that opens on a set of rasters and vectors, styled for reading:
SAR as a stretched grey band, optical as a stretched RGB composite, classified rasters with their
class colours (the .qml STARS writes beside them, or the file's colour table), sheets as outlines.
Runs headless; the demo uses it after the Processing steps."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class LayerSpec:
    """One layer: `style` is "grey:B" (one band, 2-98 % stretch), "rgb:R,G,B" (composite), "outline"
    (vector, labelled by its first text field), or "" (the layer's own: .qml beside it, colour table)."""

    name: str
    path: str
    style: str = ""
    visible: bool = True


def _ensure_app():
    from qgis.core import QgsApplication

    if QgsApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QgsApplication([], False)
        app.initQgis()
        _ensure_app.app = app  # keep it alive for the life of the process
    return QgsApplication.instance()


def _style_raster(layer, style: str) -> None:
    from qgis.core import (QgsContrastEnhancement, QgsMultiBandColorRenderer, QgsRasterMinMaxOrigin,
                           QgsSingleBandGrayRenderer)

    kind, _, bands = style.partition(":")
    numbers = [int(b) for b in bands.split(",") if b]
    provider = layer.dataProvider()
    if kind == "grey":
        renderer = QgsSingleBandGrayRenderer(provider, numbers[0])
        targets = [(renderer.setContrastEnhancement, numbers[0])]
    elif kind == "rgb":
        renderer = QgsMultiBandColorRenderer(provider, *numbers)
        targets = [(renderer.setRedContrastEnhancement, numbers[0]), (renderer.setGreenContrastEnhancement, numbers[1]),
                   (renderer.setBlueContrastEnhancement, numbers[2])]
    else:
        raise ValueError(f"unknown raster style {style!r}; use grey:B or rgb:R,G,B")
    for setter, band in targets:
        ce = QgsContrastEnhancement(provider.dataType(band))
        ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
        lo, hi = provider.cumulativeCut(band, 0.02, 0.98, layer.extent(), 250_000)
        ce.setMinimumValue(lo)
        ce.setMaximumValue(hi)
        setter(ce)
    origin = renderer.minMaxOrigin()  # a copy: set it back, or the 2-98 % cut is not what gets saved
    origin.setLimits(QgsRasterMinMaxOrigin.Limits.CumulativeCut)
    renderer.setMinMaxOrigin(origin)
    layer.setRenderer(renderer)


def _style_outline(layer) -> None:
    from qgis.core import (QgsPalLayerSettings, QgsSimpleFillSymbolLayer, QgsTextFormat,
                           QgsVectorLayerSimpleLabeling)
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QColor

    symbol = layer.renderer().symbol()
    fill = QgsSimpleFillSymbolLayer()
    fill.setBrushStyle(Qt.BrushStyle.NoBrush)
    fill.setStrokeColor(QColor("#202020"))
    fill.setStrokeWidth(0.6)
    symbol.changeSymbolLayer(0, fill)
    # text fields (neither numbers nor dates), without QVariant/QMetaType codes that differ in Qt6
    text_fields = [f.name() for f in layer.fields() if not f.isNumeric() and not f.isDateOrTime()]
    if text_fields:
        settings = QgsPalLayerSettings()
        settings.fieldName = text_fields[0]
        fmt = QgsTextFormat()
        font = fmt.font()
        # No family named: QGIS matches an empty family with any installed font, so the project
        # opens without a "font not available" warning on every system (a named family is only
        # safe on machines that have it; the offscreen default "DejaVu LGC Sans" is on few).
        font.setFamily("")
        fmt.setFont(font)
        fmt.setSize(11)
        settings.setFormat(fmt)
        layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
        layer.setLabelsEnabled(True)


def write_project(path: str | os.PathLike, groups: Sequence[tuple[str, Sequence[LayerSpec]]],
                  title: str = "STARS") -> Path:
    """Write `path` (.qgz) with one layer-tree group per (group name, layers), first group on top.
    The project opens zoomed to the layers' common extent (its default view)."""
    _ensure_app()
    from qgis.core import (QgsCoordinateTransform, QgsProject, QgsRasterLayer, QgsRectangle, QgsReferencedRectangle,
                           QgsVectorLayer)
    from stars_core.files import atomic_path

    path = Path(path)
    project = QgsProject()
    project.setTitle(title)
    root = project.layerTreeRoot()
    crs = None
    for group_name, layers in groups:
        group = root.addGroup(group_name)
        for spec in layers:
            is_vector = spec.path.lower().split("|")[0].endswith((".gpkg", ".shp", ".geojson"))
            layer = QgsVectorLayer(spec.path, spec.name, "ogr") if is_vector else QgsRasterLayer(spec.path, spec.name)
            if not layer.isValid():
                raise ValueError(f"QGIS cannot open {spec.path} for the project layer '{spec.name}'")
            if spec.style == "outline":
                _style_outline(layer)
            elif spec.style:
                _style_raster(layer, spec.style)
            project.addMapLayer(layer, False)
            group.addLayer(layer).setItemVisibilityChecked(spec.visible)
            if crs is None and layer.crs().isValid():  # an empty CRS object is truthy
                crs = layer.crs()
    if crs is not None:
        project.setCrs(crs)
        extent = QgsRectangle()
        extent.setMinimal()
        for layer in project.mapLayers().values():
            box = layer.extent()
            if layer.crs().isValid() and layer.crs() != crs:
                box = QgsCoordinateTransform(layer.crs(), crs, project).transformBoundingBox(box)
            extent.combineExtentWith(box)
        if not extent.isEmpty():
            project.viewSettings().setDefaultViewExtent(QgsReferencedRectangle(extent, crs))
    # QGIS writes the project file (.qgs) under a temporary name in the same folder, so its relative
    # layer paths are right; it is zipped as QGIS zips a .qgz, under the project's own name inside
    # (a temporary .qgz name would give the file inside a temporary name), then renamed into place.
    import zipfile

    with atomic_path(path) as tmp:
        qgs = Path(tmp).with_name(Path(tmp).name + ".qgs")
        try:
            if not project.write(str(qgs)):
                raise OSError(f"QGIS could not write the project {path}: {project.error()}")
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                z.write(qgs, path.with_suffix(".qgs").name)
        finally:
            qgs.unlink(missing_ok=True)
    return path
