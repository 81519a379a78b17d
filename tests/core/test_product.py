"""The land-cover product (stars_core/product): the map cleaned to a minimum mapping unit."""
import numpy as np
import pytest
import rasterio
from scipy import ndimage

from stars_core.product.mmu import clean_map, mmu_pixels
from stars_core.errors import InputError

QUIET = {"log": lambda *_: None}


def test_the_unit_is_read_with_its_unit():
    assert mmu_pixels("0.5ha", 4.0) == 1250 and mmu_pixels("500m2", 4.0) == 125 and mmu_pixels("500 m2", 3.0) == 167
    assert mmu_pixels("12px", 100.0) == 12 and mmu_pixels(7, 1.0) == 7 and mmu_pixels("0.01km2", 100.0) == 100
    for bad in ("half a hectare", "0.5 acres", "-3ha", ""):
        with pytest.raises(InputError, match="minimum mapping unit"):
            mmu_pixels(bad, 4.0)


def _patches_below(data: np.ndarray, nodata: int, threshold: int, connectivity: int) -> int:
    """Patches smaller than `threshold` that touch another class (and could have been merged)."""
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    small = 0
    for value in np.unique(data[data != nodata]):
        labels, n = ndimage.label(data == value, structure)
        sizes = np.bincount(labels.ravel())
        for k in np.flatnonzero(sizes[1:] < threshold) + 1:
            ring = ndimage.binary_dilation(labels == k, structure) & (labels != k)
            if np.any((data[ring] != nodata) & (data[ring] != value)):
                small += 1
    return small


@pytest.mark.parametrize("connectivity", [4, 8])
def test_cleaning_merges_every_small_patch_and_keeps_no_data_and_the_legend(demo_scene, tmp_path, connectivity):
    from stars_core.classes import ClassTable

    classes = ClassTable.from_file(demo_scene["classes"])
    out = tmp_path / f"clean{connectivity}.tif"
    assert demo_scene["labels"].with_suffix(".qml").is_file()
    result = clean_map(demo_scene["labels"], out, "0.02ha", connectivity, **QUIET)  # 2 m pixels: 50 pixels
    assert result["pixels"] == 50 and result["changed"] > 0
    with rasterio.open(demo_scene["labels"]) as a, rasterio.open(out) as b:
        before, after = a.read(1), b.read(1)
        assert b.transform == a.transform and b.crs == a.crs and b.colormap(1) == a.colormap(1)
        assert b.block_shapes[0] != (1, b.width)  # tiled
    assert np.array_equal(before == 0, after == 0)  # no-data kept, never grown
    assert _patches_below(before, 0, 50, connectivity) > 0
    assert _patches_below(after, 0, 50, connectivity) == 0
    assert set(np.unique(after)) <= set(classes.values) | {0}
    assert out.with_suffix(".qml").is_file()  # the legend beside it, as the input had one


def test_segment_with_a_minimum_mapping_unit_cleans_the_class_map_only(demo_scene, trained_model, tmp_path):
    from stars_core.config import SegmentConfig
    from stars_core.segmentation.infer import segment

    raw = segment(trained_model, demo_scene["sar"], tmp_path / "raw.tif", SegmentConfig(tile_size=128, device="cpu"),
                  confidence=tmp_path / "raw_conf.tif")
    clean_map(raw.path, tmp_path / "expected.tif", "40px", 8, **QUIET)
    res = segment(trained_model, demo_scene["sar"], tmp_path / "mmu.tif",
                  SegmentConfig(tile_size=128, device="cpu", mmu="40px"), confidence=tmp_path / "mmu_conf.tif")
    with rasterio.open(tmp_path / "expected.tif") as e, rasterio.open(res.path) as m, \
            rasterio.open(tmp_path / "raw_conf.tif") as c1, rasterio.open(tmp_path / "mmu_conf.tif") as c2:
        got = m.read(1)
        # two model runs: the thread count follows the machine's load, which can flip a near-tie pixel
        assert (got == e.read(1)).mean() > 0.995
        assert _patches_below(got, 255, 40, 8) == 0
        assert np.array_equal(c1.read(1), c2.read(1), equal_nan=True)  # the model's confidence, untouched
        assert m.tags(1)["STARS_CLASSES"] and m.colormap(1)
    from stars_core.checkpoint import read_meta, read_model_file

    classes = read_meta(read_model_file(trained_model)).classes
    values = dict(zip(classes.names, classes.values))
    assert {n: int(np.sum(got == values[n])) for n in res.class_pixels} == res.class_pixels
    assert any("minimum mapping unit" in w for w in res.warnings)
    with pytest.raises(InputError, match="minimum mapping unit"):
        SegmentConfig(mmu="big")


def test_map_sheets_are_cleaned_as_one_mosaic_so_no_seams(demo_scene, trained_model, tmp_path):
    from stars_core.config import SegmentConfig
    from stars_core.segmentation.sheets import read_sheets, segment_sheets

    res = segment_sheets(trained_model, demo_scene["sar"], read_sheets(demo_scene["sheets"], "name"), tmp_path / "s",
                         SegmentConfig(tile_size=128, device="cpu", mmu="60px"), log=lambda *_: None)
    cleaned = tmp_path / "s" / "mosaic_mmu.tif"
    clean_map(res.mosaic, tmp_path / "one.tif", "60px", 8, **QUIET)
    with rasterio.open(cleaned) as a, rasterio.open(tmp_path / "one.tif") as b:
        mosaic = a.read(1)
        assert np.array_equal(mosaic, b.read(1))
    assert _patches_below(mosaic, 255, 60, 8) == 0  # across the sheet edges too
    with rasterio.open(tmp_path / "s" / "A1.tif") as sheet:
        assert (sheet.read(1) != 255).any()  # the sheets themselves are the model's map


def test_polygons_tile_the_map_exactly_with_classes_areas_and_holes(demo_scene, tmp_path):
    from osgeo import ogr
    from shapely import wkb
    from shapely.ops import unary_union

    from stars_core.classes import ClassTable
    from stars_core.product.polygons import polygonize

    classes = ClassTable.from_file(demo_scene["classes"])
    out = tmp_path / "polygons.gpkg"
    result = polygonize(demo_scene["labels"], out, min_area="0.02ha", class_table=classes, **QUIET)
    ds = ogr.Open(str(out))
    layer = ds.GetLayerByName("landcover")
    polys, holes = [], 0
    for f in layer:
        g = wkb.loads(bytes(f.GetGeometryRef().ExportToWkb()))
        assert g.is_valid and g.geom_type == "MultiPolygon"
        assert f.GetField("class") == dict(zip(classes.values, classes.names))[f.GetField("value")]
        assert f.GetField("area_m2") == pytest.approx(g.area) and f.GetField("area_ha") == pytest.approx(g.area / 1e4)
        assert g.area >= 50 * 4 - 1e-6 or f.GetField("value") == 0  # the minimum area (50 pixels of 4 m2)
        holes += sum(len(part.interiors) for part in g.geoms)
        polys.append(g)
    assert len(polys) == result["polygons"] and holes > 0  # holes kept
    union = unary_union(polys)
    assert union.area == pytest.approx(sum(p.area for p in polys))  # no overlaps
    with rasterio.open(demo_scene["labels"]) as src:
        mapped = int((src.read(1) != 0).sum()) * 4.0
    assert union.area == pytest.approx(mapped) == pytest.approx(result["area_m2"])  # no gaps, no-data left out


def test_segment_writes_polygons_after_the_minimum_mapping_unit(demo_scene, int8_model, tmp_path, capsys):
    from osgeo import ogr

    from stars_core.cli import main as cli_main

    trained_model = int8_model["model"]  # the default path runs its int8 export, made once for the session
    gpkg = tmp_path / "poly.gpkg"
    assert cli_main(["segment", str(trained_model), str(demo_scene["sar"]), str(tmp_path / "m.tif"), "--tile-size",
                     "128", "--device", "cpu", "--mmu", "0.02ha", "--polygons", str(gpkg)]) == 0
    ds = ogr.Open(str(gpkg))  # kept: a layer must not outlive its data source
    areas = [f.GetField("area_m2") for f in ds.GetLayerByName("landcover")]
    ds = None
    assert areas and min(areas) >= 200 - 1e-6  # 0.02 ha: no polygon below the unit
    assert "polygons" in capsys.readouterr().out
    assert cli_main(["segment", str(trained_model), str(demo_scene["sar"]), str(tmp_path / "n.tif"),
                     "--polygons", str(demo_scene["sar"])]) == 2  # refused before the model runs
    assert not (tmp_path / "n.tif").exists()


def _coverage(gpkg) -> list:
    """The polygons of a land-cover GeoPackage, checked to be a valid coverage: valid multipolygons,
    no overlaps (the union's area is the sum of the areas) and areas as stored."""
    from osgeo import ogr
    from shapely import wkb
    from shapely.ops import unary_union

    ds = ogr.Open(str(gpkg))
    rows = [(f.GetField("value"), f.GetField("area_m2"), wkb.loads(bytes(f.GetGeometryRef().ExportToWkb())))
            for f in ds.GetLayerByName("landcover")]
    ds = None
    for _value, area, g in rows:
        assert g.is_valid and g.geom_type == "MultiPolygon" and area == pytest.approx(g.area)
    assert unary_union([g for *_, g in rows]).area == pytest.approx(sum(g.area for *_, g in rows))
    return rows


def _vertices(rows) -> int:
    return sum(len(ring.coords) for *_, g in rows for p in g.geoms for ring in (p.exterior, *p.interiors))


def test_simplified_polygons_still_tile_the_map_around_no_data(tmp_path):
    """Shared boundaries are simplified once for both sides: no gaps, no overlaps, every patch kept
    with its class, holes kept, no-data left out, far fewer vertices."""
    from shapely.ops import unary_union

    from stars_core.classes import ClassTable
    from stars_core.product.polygons import polygonize

    rng = np.random.default_rng(3)
    data = ndimage.zoom(rng.integers(1, 5, (12, 12)), 16, order=0).astype("uint8")  # 192 px blocks of 4 classes
    data = ndimage.median_filter(data, 9)  # ragged, staircased outlines
    data[60:100, 70:130] = 255  # a no-data hole
    data[5:8, 5:8] = 9 - data[5, 5]  # a 3-pixel island of another class inside a patch
    profile = {"driver": "GTiff", "width": 192, "height": 192, "count": 1, "dtype": "uint8", "nodata": 255,
               "crs": "EPSG:32633", "transform": rasterio.transform.from_origin(500_000, 6_000_000, 10, 10)}
    with rasterio.open(tmp_path / "map.tif", "w", **profile) as dst:
        dst.write(data, 1)
    (tmp_path / "classes.csv").write_text("value,name,color\n" + "".join(f"{v},c{v},#{v:02x}{v:02x}80\n" for v in range(1, 9)))
    classes = ClassTable.from_file(tmp_path / "classes.csv")
    traced = polygonize(tmp_path / "map.tif", tmp_path / "traced.gpkg", class_table=classes, **QUIET)
    simple = polygonize(tmp_path / "map.tif", tmp_path / "simple.gpkg", class_table=classes, simplify="1.5px", **QUIET)
    assert simple["simplified"] == pytest.approx(15.0) and simple["polygons"] == traced["polygons"]
    before, after = _coverage(tmp_path / "traced.gpkg"), _coverage(tmp_path / "simple.gpkg")
    assert _vertices(after) < 0.7 * _vertices(before)
    assert sorted(v for v, *_ in after) == sorted(v for v, *_ in before)  # every patch, with its class
    mapped = int((data != 255).sum()) * 100.0
    assert sum(a for _, a, _ in after) == pytest.approx(mapped, rel=0.01)  # no gaps: the area is kept
    union = unary_union([g for *_, g in after])
    assert len(union.geoms if union.geom_type == "MultiPolygon" else [union]) == 1
    assert len(union.interiors if union.geom_type == "Polygon" else union.geoms[0].interiors) == 1  # the no-data hole
    assert any(len(p.interiors) for *_, g in after for p in g.geoms)  # the island's hole is kept


def test_simplification_tolerance_is_read_with_its_unit(demo_scene, tmp_path):
    from stars_core.cli import main as cli_main
    from stars_core.product.polygons import parse_tolerance

    assert parse_tolerance("1.5px") == (1.5, "px") and parse_tolerance(" 15 m") == (15.0, "m")
    for bad in ("2 feet", "0px", "-1m", "fine"):
        with pytest.raises(InputError, match="simplification tolerance"):
            parse_tolerance(bad)
    out = tmp_path / "p.gpkg"
    assert cli_main(["polygons", str(demo_scene["labels"]), str(out), "--class-table", str(demo_scene["classes"]),
                     "--min-area", "0.02ha", "--simplify", "4m"]) == 0
    rows = _coverage(out)  # the minimum area holds for the patches; simplifying moves an area a little
    assert rows and all(a >= 0.5 * 200 or v == 0 for v, a, _ in rows)
    assert cli_main(["polygons", str(demo_scene["labels"]), str(tmp_path / "q.gpkg"), "--simplify", "2 feet"]) == 2
    assert not (tmp_path / "q.gpkg").exists()


@pytest.mark.parametrize("when", [1, 40])  # during polygonize, and during the simplification after it
def test_a_cancelled_polygon_run_ends_quietly_and_leaves_nothing(demo_scene, tmp_path, capfd, when):
    from stars_core.product.polygons import polygonize
    from stars_core.errors import Cancelled

    calls = iter(range(10_000))
    out = tmp_path / "p.gpkg"
    with pytest.raises(Cancelled):
        polygonize(demo_scene["labels"], out, class_table=demo_scene["classes"], simplify="1px",
                   cancel=lambda: next(calls) >= when, log=lambda m: None)
    err = capfd.readouterr().err
    assert "ERROR" not in err and "sqlite3_exec" not in err, err  # GDAL had nothing to flush into a gone file
    assert not out.exists() and not list(tmp_path.iterdir())
