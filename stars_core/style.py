"""Legends that GIS tools pick up without help: a QGIS style file (.qml) beside a classified
raster, which QGIS applies when the raster is added to a project."""
from __future__ import annotations

from xml.sax.saxutils import quoteattr

from .classes import ClassTable


def paletted_qml(classes: ClassTable, band: int = 1) -> str:
    """A QGIS paletted ("unique values") renderer: one entry per class, its colour and its name."""
    entries = "\n".join(
        f'        <paletteEntry value="{v}" color="{c}" alpha="255" label={quoteattr(n)}/>'
        for v, n, c in zip(classes.values, classes.names, classes.colors)
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="{band}" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
      <colorramp type="randomcolors" name="[source]"/>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""
