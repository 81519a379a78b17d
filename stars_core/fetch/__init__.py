"""From an area and a date range to rasters on one grid, from STAC catalogues (issue 42).

Three small steps a reader can follow, the grid chosen once and passed down:
    aoi.py      the area a user names (bbox, vector file, raster) and the output grid (UTM, 10 m lattice)
    sources.py  the catalogues known by name: API, collection, asset keys, scaling, mask, licence
    search.py   STAC search with pystac-client (the `fetch` extra), the API's errors in one line
    plan.py     what would be read, before any pixel is: items, dates, orbits, cloud, MB, pixels
    read.py     windowed COG reads over HTTP warped onto the grid (rasterio WarpedVRT), retries, errors
    cache.py    each asset warped whole onto the grid once, kept per user: a rerun reads nothing twice
    pair.py     the pair for `stars train`: S1 median in dB, S2 clear-look median, labels, class table,
                provenance, all written atomically
    series.py   one S1 raster per acquisition day (same-day slices mosaicked) for `stars segment-series`
    run.py      one call from a FetchConfig to the files: what `stars fetch` and the QGIS algorithms run
"""
