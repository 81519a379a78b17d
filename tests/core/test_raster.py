"""Raster and vector helpers: opening, band names, pixel size, valid masks, grid alignment, polygons."""
import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as transform_xy
from rasterio.windows import Window

from stars_core.raster import aligned, band_names, geometries_in, open_raster, pixel_size, read_polygons, valid_mask
from stars_core.errors import InputError
from tests.core.helpers import reproject_raster, write_polygons

CRS = "EPSG:32632"
ORIGIN = (600000, 5000000)


def _write(path, data, nodata=None, transform=None, crs=CRS, descriptions=None, mask=None):
    data = np.asarray(data)
    data = data[None] if data.ndim == 2 else data
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=crs, nodata=nodata,
                       transform=transform or from_origin(*ORIGIN, 10, 10)) as ds:
        ds.write(data)
        if descriptions:
            ds.descriptions = descriptions
        if mask is not None:
            ds.write_mask(mask)
    return path


def test_open_raster_errors_name_the_role_and_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"modality-1 raster '.*missing\.tif' not found"):
        open_raster(tmp_path / "missing.tif", "modality-1")
    (tmp_path / "text.tif").write_text("not a raster")
    with pytest.raises(InputError, match=r"label '.*text\.tif' is not a raster GDAL can read"):
        open_raster(tmp_path / "text.tif", "label")
    _write(tmp_path / "nocrs.tif", np.ones((4, 4), np.uint8), crs=None)
    with pytest.raises(InputError, match=r"nocrs\.tif' has no CRS.*gdal_edit"):
        open_raster(tmp_path / "nocrs.tif", "modality-2")


def test_band_names_and_pixel_size(tmp_path):
    path = _write(tmp_path / "a.tif", np.ones((3, 4, 4), np.float32), descriptions=("VV", None, "ratio"),
                  transform=from_origin(*ORIGIN, 10, 20))  # non-square pixels, north-up (negative e)
    with open_raster(path, "test") as ds:
        assert band_names(ds) == ["VV", "band 2", "ratio"]
        assert pixel_size(ds) == (10.0, 20.0)


def test_valid_mask_needs_every_band_to_hold_data(tmp_path):
    data = np.full((2, 3, 3), 5, np.uint16)
    data[0, 0, 0] = 0       # no data in band 1 only
    data[:, 0, 1] = 0       # no data in both bands
    data[1, 2, 2] = 0
    with open_raster(_write(tmp_path / "nd.tif", data, nodata=0), "test") as ds:
        expected = np.ones((3, 3), bool)
        expected[0, 0] = expected[0, 1] = expected[2, 2] = False
        assert valid_mask(ds, ds.read()).tolist() == expected.tolist()
        window = Window(1, 1, 2, 2)
        assert valid_mask(ds, ds.read(window=window), window).tolist() == expected[1:, 1:].tolist()


def test_valid_mask_honours_gdal_masks_and_non_finite_values(tmp_path):
    data = np.ones((2, 3, 3), np.float32)
    data[0, 1, 1], data[1, 2, 0] = np.nan, np.inf   # no declared no-data: NaN/inf are still invalid
    mask = np.full((3, 3), 255, np.uint8)
    mask[0, 2] = 0                                   # a GDAL mask band hides this pixel
    with open_raster(_write(tmp_path / "m.tif", data, mask=mask), "test") as ds:
        assert ds.nodata is None
        expected = np.ones((3, 3), bool)
        expected[1, 1] = expected[2, 0] = expected[0, 2] = False
        assert valid_mask(ds, ds.read()).tolist() == expected.tolist()


def test_aligned_returns_the_dataset_itself_on_the_same_grid(tmp_path):
    a = _write(tmp_path / "a.tif", np.ones((4, 4), np.uint8))
    b = _write(tmp_path / "b.tif", np.full((2, 4, 4), 7, np.float32))
    with open_raster(a, "ref") as ref, open_raster(b, "src") as src:
        assert aligned(ref, src, Resampling.nearest, "a.tif", "b.tif") is src


def test_aligned_warps_another_crs_onto_the_reference_grid(tmp_path):
    pattern = np.zeros((40, 40), np.uint8)
    pattern[:20, :20], pattern[:20, 20:], pattern[20:, :20], pattern[20:, 20:] = 1, 2, 3, 4
    ref_path = _write(tmp_path / "ref.tif", pattern)
    moved = reproject_raster(ref_path, tmp_path / "moved.tif", "EPSG:3857", 7.0)
    with open_raster(ref_path, "ref") as ref, open_raster(moved, "src") as src:
        view = aligned(ref, src, Resampling.nearest, "ref.tif", "moved.tif")
        assert isinstance(view, WarpedVRT)
        assert view.crs == ref.crs and view.shape == ref.shape and view.transform == ref.transform
        back = view.read(1)
    assert (back == pattern).mean() > 0.9
    inner = (slice(2, 18), slice(22, 38))  # each quadrant away from its edges
    for rows in inner:
        for cols in inner:
            assert (back[rows, cols] == pattern[rows, cols]).all()


def test_aligned_marks_pixels_outside_the_source_as_no_data(tmp_path):
    ref_path = _write(tmp_path / "ref.tif", np.ones((10, 10), np.uint8))
    # A float source without declared no-data covering only the west half of the reference, at 5 m.
    half = _write(tmp_path / "half.tif", np.full((2, 20, 10), 3.0, np.float32),
                  transform=from_origin(*ORIGIN, 5, 5))
    with open_raster(ref_path, "ref") as ref, open_raster(half, "src") as src:
        view = aligned(ref, src, Resampling.bilinear, "ref.tif", "half.tif")
        data = view.read()
        valid = valid_mask(view, data)
    assert valid[:, :5].all() and not valid[:, 5:].any()
    assert (data[:, :, :5] == 3.0).all()


def test_aligned_refuses_disjoint_footprints_naming_both_files(tmp_path):
    ref_path = _write(tmp_path / "ref.tif", np.ones((10, 10), np.uint8))
    far = _write(tmp_path / "far.tif", np.ones((10, 10), np.uint8),
                 transform=from_origin(ORIGIN[0] + 5000, ORIGIN[1], 10, 10))
    with open_raster(ref_path, "ref") as ref, open_raster(far, "src") as src:
        with pytest.raises(InputError, match=r"far\.tif does not overlap ref\.tif.*EPSG:32632"):
            aligned(ref, src, Resampling.nearest, "ref.tif", "far.tif")


def _square(x, y, size):
    return {"type": "Polygon", "coordinates": [[(x, y), (x + size, y), (x + size, y + size), (x, y + size), (x, y)]]}


def _ring(geom):
    return np.array(geom["coordinates"][0][0] if geom["type"] == "MultiPolygon" else geom["coordinates"][0])


def test_polygons_are_read_and_reprojected(tmp_path):
    wgs84 = rasterio.crs.CRS.from_epsg(4326).to_wkt()
    path = write_polygons(tmp_path / "p.gpkg", wgs84, [(_square(9.0, 45.0, 0.01), 3), (_square(9.1, 45.1, 0.01), 5)])
    wkt, items = read_polygons(path, "class")
    assert [v for _, v in items] == [3, 5]
    assert np.allclose(_ring(items[0][0])[0], (9.0, 45.0))  # lon/lat as written
    assert [v for _, v in read_polygons(path)[1]] == [None, None]
    # Same CRS: unchanged; another CRS: every vertex moved as rasterio moves points.
    assert geometries_in(wkt, items, rasterio.crs.CRS.from_epsg(4326)) == items
    utm = geometries_in(wkt, items, rasterio.crs.CRS.from_string(CRS))
    assert [v for _, v in utm] == [3, 5]
    for (geom, _), (orig, _) in zip(utm, items):
        ring = _ring(orig)
        xs, ys = transform_xy("EPSG:4326", CRS, ring[:, 0].tolist(), ring[:, 1].tolist())
        assert np.allclose(_ring(geom), np.column_stack([xs, ys]), atol=1e-3)
    x, y = _ring(utm[0][0])[0]  # 9 E 45 N lies on UTM zone 32's central meridian
    assert x == pytest.approx(500000, abs=1) and 4.98e6 < y < 4.99e6


def test_polygon_file_errors(tmp_path):
    wkt = rasterio.crs.CRS.from_string(CRS).to_wkt()
    path = write_polygons(tmp_path / "p.gpkg", wkt, [(_square(*ORIGIN, 10), 1)])
    with pytest.raises(InputError, match=r"field 'kind' not found in .*p\.gpkg.*\['class'\]"):
        read_polygons(path, "kind")
    with pytest.raises(InputError, match="layer 'roads' not found"):
        read_polygons(path, "class", layer="roads")
    with pytest.raises(FileNotFoundError, match="vector file"):
        read_polygons(tmp_path / "none.gpkg")


def test_overviews_through_gdal_s_bindings_equal_rasterio_s_and_a_failure_is_one_line(tmp_path, monkeypatch, capfd):
    """`build_overviews` (GDAL's bindings, which let go of the GIL) writes the overviews rasterio's
    call writes, and the same without the bindings; a file GDAL cannot update is said, not ignored."""
    import sys

    from stars_core.raster import build_overviews

    data = np.random.default_rng(4).integers(0, 5, (1, 300, 260)).astype(np.uint8)
    ours, theirs, fallback = (_write(tmp_path / f"{n}.tif", data) for n in ("ours", "theirs", "fallback"))
    build_overviews(ours, [2, 4], "mode")
    with rasterio.open(theirs, "r+") as ds:
        ds.build_overviews([2, 4], Resampling.mode)
    monkeypatch.setitem(sys.modules, "osgeo", None)  # `from osgeo import gdal` raises ImportError
    build_overviews(fallback, [2, 4], "mode")
    monkeypatch.undo()
    for level in (0, 1):
        with rasterio.open(ours, overview_level=level) as a, rasterio.open(theirs, overview_level=level) as b, \
                rasterio.open(fallback, overview_level=level) as c:
            assert a.shape == b.shape == c.shape == (300 // 2 ** (level + 1), 260 // 2 ** (level + 1))
            np.testing.assert_array_equal(a.read(), b.read())
            np.testing.assert_array_equal(c.read(), b.read())
    (tmp_path / "not.tif").write_text("not a raster")
    from osgeo import gdal

    capfd.readouterr()
    with pytest.raises(OSError, match="not.tif' could not be written: .*not recognized"):
        build_overviews(tmp_path / "not.tif", [2], "mode")
    assert capfd.readouterr().err == ""  # GDAL's own line is in the error, not printed beside it
    raising = gdal.GetUseExceptions()
    gdal.UseExceptions()  # as QGIS or another plugin may have set the bindings: the same one error
    try:
        with pytest.raises(OSError, match="not.tif' could not be written: .*not recognized"):
            build_overviews(tmp_path / "not.tif", [2], "mode")
    finally:
        if not raising:
            gdal.DontUseExceptions()
