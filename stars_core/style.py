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


def grey_qml(band: int = 1, low: float = 0.0, high: float = 1.0, invert: bool = False) -> str:
    """A QGIS grey ramp on one band of a continuous raster (confidence, probabilities, uncertainty)."""
    gradient = "WhiteToBlack" if invert else "BlackToWhite"
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="singlebandgray" grayBand="{band}" gradient="{gradient}" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <contrastEnhancement>
        <minValue>{low}</minValue>
        <maxValue>{high}</maxValue>
        <algorithm>StretchToMinimumMaximum</algorithm>
      </contrastEnhancement>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


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


def sample_qml(classes: ClassTable) -> str:
    """A QGIS vector style for an accuracy sample: the `reference` field edited with a value map
    of the class names (the interpreter picks a name, the class value is stored), the map class
    shown read-only, and the points drawn in their map class's colour."""
    options = "\n".join(f'              <Option type="Map"><Option name={quoteattr(n)} value="{v}" type="QString"/></Option>'
                        for v, n in zip(classes.values, classes.names))
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology|Fields|Forms">
{_renderer(classes, "map_value", "marker")}
  <fieldConfiguration>
    <field name="reference" configurationFlags="None">
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
  </fieldConfiguration>
  <editable>
    <field name="id" editable="0"/>
    <field name="map_value" editable="0"/>
    <field name="map_name" editable="0"/>
    <field name="reference" editable="1"/>
  </editable>
  <aliases>
    <field name="reference" index="3" alias="reference class (interpreted)"/>
  </aliases>
</qgis>
"""


def _rgba(color: str) -> str:
    c = color.lstrip("#")
    return ",".join(str(int(c[i:i + 2], 16)) for i in (0, 2, 4)) + ",255"
