"""From a classified raster to the land-cover product an analyst delivers.

    mmu.py       the map cleaned to a minimum mapping unit (GDAL's sieve): patches smaller than the
                 unit merged into their largest neighbour, no-data kept as it is
    polygons.py  the map as polygons (GDAL's polygonize): one feature per patch with its class and
                 area, neighbours sharing their boundaries, holes kept
"""
from .mmu import clean_map, mmu_pixels
from .polygons import polygonize

__all__ = ["clean_map", "mmu_pixels", "polygonize"]
