"""From a classified raster to the land-cover product an analyst delivers.

    mmu.py       the map cleaned to a minimum mapping unit (GDAL's sieve): patches smaller than the
                 unit merged into their largest neighbour, no-data kept as it is
"""
from .mmu import clean_map, mmu_pixels

__all__ = ["clean_map", "mmu_pixels"]
