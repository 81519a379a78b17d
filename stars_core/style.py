"""Legends that GIS tools pick up without help: QGIS styles (.qml) for classified and continuous
rasters, which QGIS applies when a raster with one beside it is added to a project, and default
styles stored inside a GeoPackage for vector layers (accuracy samples, land-cover polygons)."""
from __future__ import annotations

from xml.sax.saxutils import quoteattr

from .classes import ClassTable


def _raster_qml(renderer: str) -> str:
    """A QGIS raster style around one renderer element (the pipe QGIS writes for a raster layer)."""
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology">
  <pipe>
{renderer}
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def paletted_qml(classes: ClassTable, band: int = 1) -> str:
    """A QGIS paletted ("unique values") renderer: one entry per class, its colour and its name."""
    entries = "\n".join(
        f'        <paletteEntry value="{v}" color="{c}" alpha="255" label={quoteattr(n)}/>'
        for v, n, c in zip(classes.values, classes.names, classes.colors)
    )
    return _raster_qml(f"""    <rasterrenderer type="paletted" band="{band}" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
      <colorramp type="randomcolors" name="[source]"/>
    </rasterrenderer>""")


def grey_qml(band: int = 1, low: float = 0.0, high: float = 1.0) -> str:
    """A QGIS grey ramp (black to white) on one band of a continuous raster (confidence,
    probabilities, uncertainty)."""
    return _raster_qml(f"""    <rasterrenderer type="singlebandgray" grayBand="{band}" gradient="BlackToWhite" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <contrastEnhancement>
        <minValue>{low}</minValue>
        <maxValue>{high}</maxValue>
        <algorithm>StretchToMinimumMaximum</algorithm>
      </contrastEnhancement>
    </rasterrenderer>""")


def _renderer(classes: ClassTable, field: str, geometry: str) -> str:
    """A categorized renderer on `field` in the class colours: markers ("marker") or fills ("fill")."""
    categories = "\n".join(
        f'      <category render="true" symbol="{i}" value="{v}" label={quoteattr(n)}/>'
        for i, (v, n) in enumerate(zip(classes.values, classes.names)))
    if geometry == "marker":
        layer = ('<layer class="SimpleMarker" enabled="1" locked="0" pass="0"><Option type="Map">'
                 '<Option name="color" value="{c}" type="QString"/><Option name="name" value="circle" type="QString"/>'
                 '<Option name="outline_color" value="35,35,35,255" type="QString"/>'
                 '<Option name="size" value="2.6" type="QString"/></Option></layer>')
    else:
        layer = ('<layer class="SimpleFill" enabled="1" locked="0" pass="0"><Option type="Map">'
                 '<Option name="color" value="{c}" type="QString"/><Option name="outline_color" value="{c}" '
                 'type="QString"/><Option name="outline_width" value="0.1" type="QString"/>'
                 '<Option name="style" value="solid" type="QString"/></Option></layer>')
    symbols = "\n".join(
        f'      <symbol type="{geometry}" name="{i}" alpha="1" clip_to_extent="1" force_rhr="0">'
        f'{layer.format(c=_rgba(c))}</symbol>' for i, c in enumerate(classes.colors))
    return f"""  <renderer-v2 type="categorizedSymbol" attr="{field}" forceraster="0" enableorderby="0" symbollevels="0">
    <categories>
{categories}
    </categories>
    <symbols>
{symbols}
    </symbols>
  </renderer-v2>"""


def categorized_qml(classes: ClassTable, field: str, geometry: str) -> str:
    """A QGIS vector style drawing each feature in its class's colour (by the value in `field`)."""
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology">
{_renderer(classes, field, geometry)}
</qgis>
"""


def sample_qml(classes: ClassTable, fields: tuple[str, ...] = ("reference",),
               field_classes: ClassTable | None = None) -> str:
    """A QGIS vector style for an accuracy sample: the reference `fields` edited with a value map of
    class names (`field_classes`, default the map's: the interpreter picks a name, the class value is
    stored), the map class shown read-only, and the points drawn in their map class's colour. A
    sample of a from-to map has two, reference_from and reference_to, in the dates' classes."""
    named = field_classes or classes
    options = "\n".join(f'              <Option type="Map"><Option name={quoteattr(n)} value="{v}" type="QString"/></Option>'
                        for v, n in zip(named.values, named.names))
    widgets = "".join(f"""    <field name="{name}" configurationFlags="None">
      <editWidget type="ValueMap">
        <config>
          <Option type="Map">
            <Option name="map" type="List">
{options}
            </Option>
          </Option>
        </config>
      </editWidget>
    </field>
""" for name in fields)
    editable = "".join(f'    <field name="{name}" editable="1"/>\n' for name in fields)
    aliases = "".join(f'    <field name="{name}" index="{3 + k}" alias="{name.replace("_", " ")} class (interpreted)"/>\n'
                      for k, name in enumerate(fields))
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology|Fields|Forms">
{_renderer(classes, "map_value", "marker")}
  <fieldConfiguration>
{widgets}  </fieldConfiguration>
  <editable>
    <field name="id" editable="0"/>
    <field name="map_value" editable="0"/>
    <field name="map_name" editable="0"/>
{editable}  </editable>
  <aliases>
{aliases}  </aliases>
</qgis>
"""


def _rgba(color: str) -> str:
    c = color.lstrip("#")
    return ",".join(str(int(c[i:i + 2], 16)) for i in (0, 2, 4)) + ",255"


def gpkg_default_style(target, table: str, qml: str, description: str) -> None:
    """Store `qml` as the default QGIS style of layer `table` of the open GeoPackage `target` (an OGR
    data source), in its `layer_styles` table, where QGIS looks for one when the layer is added."""
    from osgeo import ogr

    styles = target.GetLayerByName("layer_styles")
    if styles is None:
        styles = target.CreateLayer("layer_styles", None, ogr.wkbNone)
        for name, kind in (("f_table_catalog", ogr.OFTString), ("f_table_schema", ogr.OFTString),
                           ("f_table_name", ogr.OFTString), ("f_geometry_column", ogr.OFTString),
                           ("styleName", ogr.OFTString), ("styleQML", ogr.OFTString), ("styleSLD", ogr.OFTString),
                           ("useAsDefault", ogr.OFTInteger), ("description", ogr.OFTString),
                           ("owner", ogr.OFTString), ("ui", ogr.OFTString), ("update_time", ogr.OFTDateTime)):
            field = ogr.FieldDefn(name, kind)
            if name == "useAsDefault":
                field.SetSubType(ogr.OFSTBoolean)
            styles.CreateField(field)
    f = ogr.Feature(styles.GetLayerDefn())
    for key, value in (("f_table_catalog", ""), ("f_table_schema", ""), ("f_table_name", table),
                       ("f_geometry_column", "geom"), ("styleName", table), ("styleQML", qml), ("styleSLD", ""),
                       ("description", description), ("owner", ""), ("ui", "")):
        f.SetField(key, value)
    f.SetField("useAsDefault", 1)
    styles.CreateFeature(f)
