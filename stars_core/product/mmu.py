"""A classified map cleaned to a minimum mapping unit (MMU).

Patches (connected pixels of one class, 4- or 8-connected) smaller than the unit are merged into
their largest neighbouring patch, repeatedly, by GDAL's sieve filter (`gdal.SieveFilter`), which
reads the raster line by line and keeps one record per patch: memory follows the number of patches,
not the raster size. No-data is the filter's mask: it is never a patch, never absorbs one and never
grows; a small patch whose only neighbour is no-data stays. The output keeps the input's grid,
colour table, class names (GDAL categories and the STARS class table), overviews and .qml legend.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from ..config import mmu_pixels
from ..files import atomic_outputs, check_outputs
from ..raster import open_raster, pixel_area
from ..errors import Cancelled, InputError

def check_unit_fits(threshold: int, pixels: int, mmu, pixel_area_m2: float) -> None:
    """A unit larger than the whole map would leave every patch below it (the sieve merges a patch
    only into a neighbour that reaches the unit): refused in one line."""
    if threshold > pixels:
        size = f"{pixels * pixel_area_m2 / 10_000:,.2f} ha" if pixel_area_m2 > 0 else f"{pixels:,} pixels"
        raise InputError(f"the minimum mapping unit {mmu} ({threshold:,} pixels) is larger than the whole map "
                         f"({size}): no patch could reach it; give a smaller unit")


def sieve(path: str | os.PathLike, threshold: int, connectivity: int = 8, cancel: Callable[[], bool] | None = None,
          progress: Callable[[float], None] | None = None) -> None:
    """Merge the patches of fewer than `threshold` pixels of the GeoTIFF `path` into their
    neighbours, in place (its no-data is the mask), and rebuild its overviews (mode)."""
    from osgeo import gdal

    if connectivity not in (4, 8):
        raise InputError(f"connectivity must be 4 or 8, got {connectivity}")
    out = gdal.Open(os.fspath(path), gdal.GA_Update)
    band = out.GetRasterBand(1)
    mask = band.GetMaskBand() if band.GetNoDataValue() is not None else None

    def report(done, _message, _data):
        if cancel is not None and cancel():
            return 0  # GDAL stops the filter
        if progress is not None:
            progress(done)
        return 1

    try:
        if threshold > 1 and gdal.SieveFilter(band, mask, band, threshold, connectivity, callback=report) != 0:
            if cancel is not None and cancel():
                raise Cancelled("cleaning cancelled; no output was written")
            raise InputError(f"GDAL's sieve filter failed on {os.fspath(path)!r}: {gdal.GetLastErrorMsg()}")
        overviews = band.GetOverviewCount()
        if overviews:
            factors = [max(1, round(out.RasterXSize / band.GetOverview(i).XSize)) for i in range(overviews)]
            out.BuildOverviews("MODE", factors)
    finally:
        band = mask = out = None


def clean_map(input: str | os.PathLike, output: str | os.PathLike, mmu: str | float | int,
              connectivity: int = 8, cancel: Callable[[], bool] | None = None,
              progress: Callable[[float], None] | None = None, log: Callable[[str], None] = print) -> dict:
    """Write `output`: the classified raster `input` (a GeoTIFF or a VRT mosaic) with patches
    smaller than `mmu` merged into their neighbours. Returns {pixels: the unit in pixels, changed:
    pixels whose class changed}."""
    from osgeo import gdal

    if connectivity not in (4, 8):
        raise InputError(f"connectivity must be 4 or 8, got {connectivity}")
    qml_in, qml_out = Path(input).with_suffix(".qml"), Path(output).with_suffix(".qml")
    check_outputs({"classified map": input}, {"cleaned map": output, "style file beside it": qml_out})
    with open_raster(input, "classified map") as ds:
        if ds.count != 1 or ds.dtypes[0] not in ("uint8", "uint16", "int16", "int32", "uint32"):
            raise InputError(f"{os.fspath(input)!r} is not a classified raster (one band of integer class values); "
                             f"it has {ds.count} band(s) of {ds.dtypes[0]}")
        threshold = mmu_pixels(mmu, pixel_area(ds))
        check_unit_fits(threshold, ds.width * ds.height, mmu, pixel_area(ds))
        overviews = ds.overviews(1)
    with atomic_outputs(output, qml_out if qml_in.is_file() else None) as (tmp, qml_tmp):
        gdal.Translate(str(tmp), os.fspath(input), format="GTiff",
                       creationOptions=["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"])
        if overviews:  # a copy has no overviews: the sieve rebuilds the ones the input had
            copy = gdal.Open(str(tmp), gdal.GA_Update)
            copy.BuildOverviews("NEAREST", overviews)
            copy = None
        sieve(tmp, threshold, connectivity, cancel, progress)
        if qml_tmp is not None:
            shutil.copyfile(qml_in, qml_tmp)
    changed = _changed(input, output)
    log(f"cleaned to a minimum mapping unit of {threshold} pixels ({connectivity}-connected): "
        f"{changed:,} pixels changed class")
    return {"pixels": threshold, "changed": changed}


def _changed(a, b) -> int:
    import numpy as np
    from rasterio.windows import Window

    with open_raster(a, "map") as x, open_raster(b, "map") as y:
        n = 0
        for row in range(0, x.height, 512):
            w = Window(0, row, x.width, min(512, x.height - row))
            n += int(np.count_nonzero(x.read(1, window=w) != y.read(1, window=w)))
    return n
