"""The catalogues `stars fetch` knows: one declarative entry per (API, collection).

Asset keys, data types, no-data values, licences and class codes were read from the catalogues' own
answers (their collections' `item_assets`, `summaries` and `license`, recorded in pystac-client's test
cassettes; copies trimmed in tests/servers/recorded/), the Sentinel-2 offset rule from Planetary
Computer's "Adjusting for the Sentinel-2 Baseline Change" notebook (processing baseline 04.00 and later
add 1000 to every reflectance count) and the SCL codes from ESA's L2A product definition (0 no data,
1 saturated or defective, 3 cloud shadows, 8/9 cloud medium/high probability, 10 thin cirrus, 11 snow).
A user names any other STAC API with items of the same kind with `--stac-url` and another collection
of a role with `--sar-collection`, `--optical-collection` or `--labels-collection`.

io-lulc-annual-v02's class codes and names are its items' own `file:values` (the collection publishes no
`classification:classes`); their colours are Planetary Computer's `io-lulc-9-class` colormap, the one its
items' `tilejson` and `rendered_preview` assets name (microsoft/planetary-computer-apis,
pctiler/pctiler/colormaps/lulc.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import InputError

PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"
EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"

COPERNICUS = ("Contains modified Copernicus Sentinel data [{year}]; the Copernicus Sentinel data terms: free, full "
              "and open access, attribution required")
SCL_MASKED = (0, 1, 3, 8, 9, 10, 11)  # no data, defective, cloud shadow, cloud medium/high, thin cirrus, snow
# Planetary Computer's io-lulc-9-class colormap (see the module docstring): water, trees, flooded vegetation,
# crops, built area, bare ground, snow/ice, clouds, rangeland
IO_LULC_COLORS = {1: "#419bdf", 2: "#397d49", 4: "#7a87c6", 5: "#e49635", 7: "#c4281b", 8: "#a59b8f", 9: "#a8ebff",
                  10: "#616161", 11: "#e3e2c3"}


@dataclass(frozen=True)
class Source:
    """One collection of one STAC API and how to read it.

    bands: output band name -> asset key. scaling: "none", "s2-baseline" (subtract 1000 from the counts
    of items whose `s2:processing_baseline` is 04.00 or later, keeping reflectance x 10000) or
    "raster-bands" (each asset's `raster:bands` scale/offset, brought back to reflectance x 10000).
    mask: asset key of a scene classification and the codes it masks, or None."""
    name: str
    role: str  # "sar", "optical" or "labels"
    api: str
    collection: str
    bands: dict[str, str]
    dtype: str  # of the assets as stored
    nodata: float | int | None
    units: str
    scaling: str = "none"
    mask: tuple[str, tuple[int, ...]] | None = None
    licence: str = ""
    attribution: str = ""
    signing: str = ""  # "planetary-computer": asset URLs need a SAS token (the planetary-computer package)
    notes: str = ""
    classes_from: str = ""  # where the class table comes from: "classification:classes" or "file:values"
    colors: dict[int, str] = field(default_factory=dict)  # class code -> "#rrggbb" where the collection has none
    extra: dict = field(default_factory=dict)

    @property
    def assets(self) -> list[str]:
        keys = list(self.bands.values())
        return keys + [self.mask[0]] if self.mask else keys


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("pc-sentinel-1-rtc", "sar", PLANETARY_COMPUTER, "sentinel-1-rtc", {"VV": "vv", "VH": "vh"}, "float32",
           -32768, "gamma0, linear power (converted to dB)", licence="CC-BY-4.0",
           attribution="Contains modified Copernicus Sentinel data [{year}]; terrain-corrected by Catalyst, "
           "hosted by Microsoft Planetary Computer", signing="planetary-computer"),
    Source("pc-sentinel-2-l2a", "optical", PLANETARY_COMPUTER, "sentinel-2-l2a",
           {"B": "B02", "G": "B03", "R": "B04", "NIR": "B08"}, "uint16", 0, "reflectance x 10000",
           scaling="s2-baseline", mask=("SCL", SCL_MASKED), licence="Copernicus Sentinel data terms (proprietary)",
           attribution=COPERNICUS, signing="planetary-computer"),
    Source("earth-search-sentinel-2-l2a", "optical", EARTH_SEARCH, "sentinel-2-l2a",
           {"B": "blue", "G": "green", "R": "red", "NIR": "nir"}, "uint16", 0, "reflectance x 10000",
           scaling="raster-bands", mask=("scl", SCL_MASKED), licence="Copernicus Sentinel data terms (proprietary)",
           attribution=COPERNICUS),
    Source("pc-esa-worldcover", "labels", PLANETARY_COMPUTER, "esa-worldcover", {"class": "map"}, "uint8", 0,
           "WorldCover class code", licence="CC-BY-4.0",
           attribution="© ESA WorldCover project {year} / Contains modified Copernicus Sentinel data ({year}) "
           "processed by ESA WorldCover consortium", signing="planetary-computer",
           classes_from="classification:classes"),
    Source("pc-io-lulc-annual-v02", "labels", PLANETARY_COMPUTER, "io-lulc-annual-v02", {"class": "data"}, "uint8",
           0, "Impact Observatory land-cover class", licence="CC-BY-4.0",
           attribution="Impact Observatory, Microsoft and Esri: 10 m annual land use and land cover (9 classes)",
           signing="planetary-computer", classes_from="file:values", colors=IO_LULC_COLORS),
)}
DEFAULTS = {"sar": "pc-sentinel-1-rtc", "optical": "pc-sentinel-2-l2a", "labels": "pc-esa-worldcover"}


def source(name: str, stac_url: str | None = None, collection: str | None = None) -> Source:
    """The entry by name; `stac_url`/`collection` point it at another API or collection with the same
    kind of items (their asset keys must be the entry's)."""
    if name not in SOURCES:
        raise InputError(f"unknown source {name!r}: choose one of {', '.join(SOURCES)}")
    entry = SOURCES[name]
    if stac_url:
        entry = replace(entry, api=stac_url.rstrip("/"), signing="")
    if collection:
        entry = replace(entry, collection=collection)
    return entry


def offset_counts(entry: Source, properties: dict, asset: dict) -> float:
    """What to add to the stored counts of `asset` to get the entry's units (reflectance x 10000)."""
    if entry.scaling == "s2-baseline":
        baseline = str(properties.get("s2:processing_baseline", "0"))
        return -1000.0 if _version(baseline) >= (4, 0) else 0.0
    if entry.scaling == "raster-bands":
        band = (asset.get("raster:bands") or [{}])[0]
        scale, offset = float(band.get("scale", 1e-4)), float(band.get("offset", 0.0))
        return offset / scale if scale else 0.0
    return 0.0


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return (0,)
