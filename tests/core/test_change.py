"""Land-cover change between two maps (stars_core/change): the from-to map, its legend and transition
matrix against a count made here, the minimum mapping unit on change patches, grouping, change
polygons, alignment of another grid, and the refusals."""
import csv
import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from stars_core.classes import ClassTable
from stars_core.cli import main as cli_main

CLASSES = ClassTable((1, 2, 3), ("forest", "farmland", "water"), ("#1a9850", "#fee08b", "#4575b4"))
PIXEL = 10.0  # metres: a pixel is 0.01 ha


def _map(path, data, transform=None, classes=CLASSES):
    from stars_core.infer import style_class_map

    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": transform or from_origin(500_000, 5_000_000, PIXEL, PIXEL),
               "nodata": 0}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data.astype(np.uint8), 1)
    style_class_map(path, classes)
    return path


@pytest.fixture
def pair(tmp_path):
    """Date A: forest left, farmland right, a water band; date B: a forest clearing (20 x 20) turned
    farmland, one stray pixel of water on farmland, a no-data corner."""
    a = np.ones((100, 100), np.uint8)
    a[:, 50:] = 2
    a[80:90, :] = 3
    b = a.copy()
    b[10:30, 10:30] = 2  # cleared: 400 pixels forest -> farmland
    b[5, 70] = 3  # one pixel farmland -> water (speckle)
    b[:5, :5] = 0  # no data at date B
    return _map(tmp_path / "a.tif", a), _map(tmp_path / "b.tif", b), a, b


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.tags(1)


def test_the_from_to_map_and_its_matrix_match_a_count_made_here(pair, tmp_path, capsys):
    pa, pb, a, b = pair
    out = tmp_path / "change.tif"
    assert cli_main(["change", str(pa), str(pb), str(out), "--csv", str(tmp_path / "m.csv"),
                     "--html", str(tmp_path / "m.html")]) == 0
    printed = capsys.readouterr().out
    assert "forest -> farmland" in printed and "4.00 ha" in printed  # 400 pixels of 0.01 ha
    values, tags = _read(out)
    legend = ClassTable.from_dict(__import__("json").loads(tags["STARS_CLASSES"]))
    name = dict(zip(legend.values, legend.names))
    valid = (a > 0) & (b > 0)
    assert (values[~valid] == 0).all()
    assert {name[v] for v in np.unique(values[valid])} == {"forest", "farmland", "water", "forest -> farmland",
                                                           "farmland -> water"}
    assert name[values[20, 20]] == "forest -> farmland" and name[values[50, 20]] == "forest"
    expected = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            expected[i, j] = ((a == i + 1) & (b == j + 1)).sum() * 0.01
    rows = list(csv.reader((tmp_path / "m.csv").open()))
    assert rows[0][1:4] == ["forest", "farmland", "water"]
    np.testing.assert_allclose([[float(v) for v in r[1:4]] for r in rows[1:4]], expected, atol=1e-6)
    assert "Transition matrix" in (tmp_path / "m.html").read_text()


def test_the_change_map_lists_the_transitions_it_holds_in_colours_that_stay_apart(pair, tmp_path):
    """No colour table in the uint16 file (65,536 legend rows in QGIS); the .qml beside it lists the
    entries the map holds, no more; every listed transition is at least 20 Delta E from every other
    listed colour (the golden-angle palette put greens 4 apart)."""
    import re

    from stars_core.change import change_map
    from stars_core.change.transitions import colour_distance

    pa, pb, a, b = pair
    result = change_map(pa, pb, tmp_path / "change.tif", log=lambda *_: None)
    with rasterio.open(result.path) as ds:
        held = sorted(int(v) for v in np.unique(ds.read(1)) if v != 0)
        assert ds.dtypes[0] == "uint16"
        with pytest.raises(ValueError):  # rasterio: "NULL color table"
            ds.colormap(1)
        assert len(json.loads(ds.tags(1)["STARS_CLASSES"])["values"]) == 3 + 6  # the full legend stays in the file
    from html import unescape

    entries = [(v, c, unescape(n)) for v, c, n in re.findall(
        r'paletteEntry value="(\d+)" color="(#[0-9a-f]{6})"[^>]*label="([^"]*)"', (tmp_path / "change.qml").read_text())]
    assert [int(v) for v, _, _ in entries] == held == list(result.present.values)
    assert {n for _, _, n in entries} == {"forest", "farmland", "water", "forest -> farmland", "farmland -> water"}
    colours = [c for _, c, _ in entries]
    changes = [c for _, c, n in entries if "->" in n]
    assert min(colour_distance(c, o) for c in changes for o in colours if o is not c) > 20


@pytest.mark.parametrize("unchanged", ["keep", "single"])
def test_every_transition_of_six_classes_has_a_colour_of_its_own(unchanged):
    """All 30 transitions of six classes (a noisy map holds them all): pairwise at least 20 Delta E
    apart and from the unchanged classes' colours, whatever the class colours."""
    from stars_core.change.transitions import Transitions, colour_distance

    classes = ClassTable(tuple(range(1, 7)), ("buildings", "roads", "water", "forest", "farmland", "bare ground"),
                         ("#d7191c", "#4d4d4d", "#2b83ba", "#1a9641", "#fdae61", "#c2a383"))
    table = Transitions(classes, unchanged).table()
    fixed = 6 if unchanged == "keep" else 1
    assert len(table) == fixed + 30 and table.colors[:fixed] == (classes.colors if fixed == 6 else ("#d9d9d9",))
    nearest = min(colour_distance(c, o) for k, c in enumerate(table.colors[fixed:], fixed)
                  for m, o in enumerate(table.colors) if m != k)
    assert nearest > 20, nearest
    assert Transitions(classes, unchanged).table() == table  # the same settings, the same colours


def test_a_minimum_mapping_unit_removes_speckle_change_and_keeps_the_clearing(pair, tmp_path):
    from stars_core.change import change_map

    pa, pb, a, b = pair
    r = change_map(pa, pb, tmp_path / "c.tif", unchanged="single", mmu="0.5ha", log=lambda m: None)
    values, _ = _read(tmp_path / "c.tif")
    names = dict(zip(r.legend.values, r.legend.names))
    assert names[values[5, 70]] == "no change"  # a 1-pixel change patch is below 0.5 ha (50 pixels)
    assert names[values[20, 20]] == "forest -> farmland"
    assert r.matrix_ha[1, 2] == 0 and r.matrix_ha[1, 1] == pytest.approx(((a == 2) & (b > 0)).sum() * 0.01)
    assert r.changed_ha == pytest.approx(4.0) and any("merged into their neighbours" in n for n in r.notes)


def test_groups_and_change_polygons(pair, tmp_path):
    from osgeo import ogr

    from stars_core.change import change_map

    pa, pb, *_ = pair
    groups = tmp_path / "groups.csv"
    groups.write_text("from,to,group\nforest,*,forest loss\n*,3,new water\n")
    r = change_map(pa, pb, tmp_path / "g.tif", groups=groups, polygons=tmp_path / "g.gpkg", log=lambda m: None)
    assert list(r.legend.names) == ["forest", "farmland", "water", "forest loss", "new water", "other change"]
    ds = ogr.Open(str(tmp_path / "g.gpkg"))
    feats = [(f.GetField("class"), f.GetField("area_ha")) for f in ds.GetLayerByName("landcover")]
    assert sorted(c for c, _ in feats) == ["forest loss", "new water"]  # unchanged pixels make no polygon
    assert sum(a for _, a in feats) == pytest.approx(r.changed_ha)
    plain = change_map(pa, pb, tmp_path / "p.tif", polygons=tmp_path / "p.gpkg", log=lambda m: None)
    ds = ogr.Open(str(tmp_path / "p.gpkg"))
    pairs = {(f.GetField("from_class"), f.GetField("to_class")) for f in ds.GetLayerByName("landcover")}
    assert pairs == {("forest", "farmland"), ("farmland", "water")} and plain.legend.names[3] == "forest -> farmland"


def test_a_map_on_another_grid_is_read_on_the_first_ones(pair, tmp_path):
    from stars_core.change import change_map

    pa, pb, a, b = pair
    coarse = _map(tmp_path / "b20.tif", b[::2, ::2], from_origin(500_000, 5_000_000, 2 * PIXEL, 2 * PIXEL))
    r = change_map(pa, coarse, tmp_path / "c.tif", log=lambda m: None)
    values, _ = _read(tmp_path / "c.tif")
    assert values.shape == a.shape and any("read on the grid of the map of date A" in n for n in r.notes)
    assert r.changed_ha == pytest.approx(4.0, abs=0.5)


def test_maps_that_cannot_make_a_change_map_are_refused_in_one_line(pair, tmp_path, capsys):
    pa, pb, a, b = pair
    other = _map(tmp_path / "other.tif", b, classes=ClassTable((1, 2, 3), ("forest", "crops", "water"),
                                                               CLASSES.colors))
    assert cli_main(["change", str(pa), str(pb), str(tmp_path / "c.tif")]) == 0
    (tmp_path / "g.csv").write_text("from,to,group\nswamp,*,drained\n")
    for argv, message in (([str(pa), str(other), str(tmp_path / "x.tif")], "different class tables"),
                          ([str(tmp_path / "c.tif"), str(pb), str(tmp_path / "x.tif")], "is a from-to map"),
                          ([str(pa), str(pb), str(pb)], "writing it would destroy the input"),
                          ([str(pa), str(pb), str(tmp_path / "x.tif"), "--groups", str(pa)], "needs the columns"),
                          ([str(pa), str(pb), str(tmp_path / "x.tif"), "--groups", str(tmp_path / "g.csv")],
                           "'swamp' is not a class of the maps")):
        capsys.readouterr()
        assert cli_main(["change", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not (tmp_path / "x.tif").exists()


def test_the_change_map_is_sampled_and_assessed_with_its_transitions_as_strata(pair, tmp_path):
    """The reference is recorded as the class at each date; an interpreter who agrees with both maps
    everywhere gives overall accuracy 1, the mapped transition areas, and (Stehman's estimators) each
    date's mapped class areas."""
    from osgeo import ogr

    from stars_core.accuracy.assess import assess
    from stars_core.accuracy.report import text
    from stars_core.accuracy.sample import draw_sample
    from stars_core.change import change_map

    pa, pb, a, b = pair
    r = change_map(pa, pb, tmp_path / "c.tif", log=lambda m: None)
    sample = draw_sample(tmp_path / "c.tif", tmp_path / "s.gpkg", n=60, minimum=10, log=lambda m: None)
    assert "forest -> farmland" in sample.strata.names
    assert all(n >= 1 for n, px in zip(sample.points, sample.strata.pixels) if px)  # every mapped stratum
    ds = ogr.Open(str(tmp_path / "s.gpkg"), 1)
    layer = ds.GetLayerByName("sample")
    assert layer.GetLayerDefn().GetFieldIndex("reference") < 0
    with rasterio.open(pa) as ma, rasterio.open(pb) as mb:
        for f in layer:
            g = f.GetGeometryRef()
            row, col = ma.index(g.GetX(), g.GetY())
            f.SetField("reference_from", int(a[row, col]))
            f.SetField("reference_to", int(b[row, col]))
            layer.SetFeature(f)
    layer = ds = None
    result = assess(tmp_path / "c.tif", tmp_path / "s.gpkg")
    e = result.estimate
    k = list(e.names).index("forest -> farmland")
    assert e.overall == pytest.approx(1.0) and e.area[k] == pytest.approx(r.matrix_ha[0, 1])
    for key, m in (("first", a), ("second", b)):
        _, est = result.dates[key]
        valid = (a > 0) & (b > 0)
        mapped = [((m == v) & valid).sum() * 0.01 for v in (1, 2, 3)]
        np.testing.assert_allclose(est.area_share * e.total_area, mapped, rtol=1e-9)
    assert "class areas at the second date (Stehman 2014" in text(result)


def test_a_change_sample_with_one_date_labelled_is_refused(pair, tmp_path, capsys):
    from osgeo import ogr

    from stars_core.change import change_map

    pa, pb, *_ = pair
    change_map(pa, pb, tmp_path / "c.tif", log=lambda m: None)
    assert cli_main(["sample", str(tmp_path / "c.tif"), str(tmp_path / "s.gpkg"), "--n", "30"]) == 0
    ds = ogr.Open(str(tmp_path / "s.gpkg"), 1)
    layer = ds.GetLayerByName("sample")
    f = layer.GetNextFeature()
    f.SetField("reference_from", 1)
    layer.SetFeature(f)
    f = layer = ds = None
    capsys.readouterr()
    assert cli_main(["assess", str(tmp_path / "c.tif"), str(tmp_path / "s.gpkg")]) == 2
    assert "have a reference for one date only" in capsys.readouterr().err
