"""Land-cover change between two maps (stars_core/change): the from-to map, its legend and transition
matrix against a count made here, the minimum mapping unit on change patches, grouping, change
polygons, alignment of another grid, and the refusals."""
import csv
import json
import re

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from stars_core.classes import ClassTable
from stars_core.cli import main as cli_main

CLASSES = ClassTable((1, 2, 3), ("forest", "farmland", "water"), ("#1a9850", "#fee08b", "#4575b4"))
PIXEL = 10.0  # metres: a pixel is 0.01 ha


def _map(path, data, transform=None, classes=CLASSES):
    from stars_core.classmap import style_class_map

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


def _label(sample_path, grid_path, truth) -> None:
    """Give every point of a change sample its reference: `truth(row, col)` -> (from, to) class values,
    the point's row and column on the grid of `grid_path`."""
    from osgeo import ogr

    ds = ogr.Open(str(sample_path), 1)
    layer = ds.GetLayerByName("sample")
    with rasterio.open(grid_path) as grid:
        for f in layer:
            g = f.GetGeometryRef()
            ref_from, ref_to = truth(*grid.index(g.GetX(), g.GetY()))
            f.SetField("reference_from", int(ref_from))
            f.SetField("reference_to", int(ref_to))
            layer.SetFeature(f)
    layer = ds = None


def _sampled(pa, pb, a, b, folder, truth=None, **sample_args):
    """The change map of pa and pb in `folder`, a sample of it labelled by `truth` (default: both maps
    right everywhere), and its paths."""
    from stars_core.accuracy.sample import draw_sample
    from stars_core.change import change_map

    folder.mkdir(exist_ok=True)
    change_map(pa, pb, folder / "c.tif", log=lambda m: None)
    draw_sample(folder / "c.tif", folder / "s.gpkg", **{"n": 60, "minimum": 5, "log": lambda m: None, **sample_args})
    _label(folder / "s.gpkg", pa, truth or (lambda r, c: (a[r, c], b[r, c])))
    return folder / "c.tif", folder / "s.gpkg"


def test_a_second_map_in_another_crs_gives_its_class_areas_and_accuracy(pair, tmp_path):
    """Map B in EPSG:3035 (map A in UTM): `change` reads it on A's grid, and `assess` must look the
    points up in B's own CRS: its class areas as with B in A's CRS, not 0."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    from stars_core.accuracy.assess import assess

    pa, pb, a, b = pair
    with rasterio.open(pb) as src:
        t, w, h = calculate_default_transform(src.crs, "EPSG:3035", src.width, src.height, *src.bounds,
                                              resolution=PIXEL)
        data = np.zeros((h, w), np.uint8)
        reproject(b, data, src_transform=src.transform, src_crs=src.crs, dst_transform=t, dst_crs="EPSG:3035",
                  src_nodata=0, dst_nodata=0, resampling=Resampling.nearest)
    laea = _map(tmp_path / "b3035.tif", data, t)
    with rasterio.open(laea, "r+") as ds:
        ds.crs = "EPSG:3035"
    same = assess(*_sampled(pa, pb, a, b, tmp_path / "utm"))
    other = assess(*_sampled(pa, laea, a, b, tmp_path / "laea"))
    _, est_same = same.dates["second"]
    _, est_other = other.dates["second"]
    areas = est_other.area_share * other.estimate.total_area
    assert (areas > 10).all() and est_other.overall > 0.9
    np.testing.assert_allclose(areas, est_same.area_share * same.estimate.total_area, atol=3.0)
    assert any("the points were transformed" in n for n in other.estimate.notes)


def test_a_date_map_with_values_its_class_table_lacks_is_refused_before_writing(pair, tmp_path, capsys):
    pa, pb, a, b = pair
    bad = b.copy()
    bad[40:50, 60:70] = 7  # 100 pixels of a value the class table does not list
    pbad = _map(tmp_path / "bad.tif", bad)
    capsys.readouterr()
    assert cli_main(["change", str(pa), str(pbad), str(tmp_path / "x.tif"), "--csv", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "map of date B" in err and "[7]" in err and "class table" in err, err
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x*"))


def _hash(path) -> str:
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_assess_refuses_a_date_map_changed_since_the_change_map(pair, tmp_path, capsys):
    import json

    pa, pb, a, b = pair
    change, sample = _sampled(pa, pb, a, b, tmp_path / "run")
    with rasterio.open(change) as ds:
        record = json.loads(ds.tags()["STARS_CHANGE"])["inputs"]
    assert set(record) == {"map_a", "map_b"} and record["map_b"]["size"] == (tmp_path / "b.tif").stat().st_size
    original = pb.read_bytes()
    edited = b.copy()
    edited[60:70, 0:10] = 3  # same size on disk (uncompressed): only the hash of the class band tells
    _map(pb, edited)
    assert pb.stat().st_size == len(original)
    capsys.readouterr()
    assert cli_main(["assess", str(change), str(sample)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "second date" in err and "changed after `stars change`" in err, err
    assert "rerun `stars change` and draw a new sample, or restore the map" in err
    _map(pb, b)  # restored: the same class band (a new modification time) is accepted
    assert cli_main(["assess", str(change), str(sample)]) == 0


def test_a_change_map_made_before_the_record_is_assessed_with_a_note(pair, tmp_path):
    import json

    from stars_core.accuracy.assess import assess
    from stars_core.accuracy.sample import draw_sample
    from stars_core.change import change_map

    pa, pb, a, b = pair
    change_map(pa, pb, tmp_path / "c.tif", log=lambda m: None)
    with rasterio.open(tmp_path / "c.tif", "r+") as ds:
        tag = json.loads(ds.tags()["STARS_CHANGE"])
        del tag["inputs"]
        ds.update_tags(STARS_CHANGE=json.dumps(tag))
    draw_sample(tmp_path / "c.tif", tmp_path / "s.gpkg", n=60, minimum=5, log=lambda m: None)
    _label(tmp_path / "s.gpkg", pa, lambda r, c: (a[r, c], b[r, c]))
    result = assess(tmp_path / "c.tif", tmp_path / "s.gpkg")
    assert set(result.dates) == {"first", "second"}
    assert sum("records nothing of its" in n for n in result.estimate.notes) == 2


def test_assess_never_writes_over_a_date_map_it_reads_through_the_change_record(pair, tmp_path, capsys):
    pa, pb, a, b = pair
    change, sample = _sampled(pa, pb, a, b, tmp_path / "run")
    before = _hash(pb)
    for flag, target in (("--html", pb), ("--json", pa), ("--csv", pb)):
        capsys.readouterr()
        assert cli_main(["assess", str(change), str(sample), flag, str(target)]) == 2
        err = capsys.readouterr().err.strip()
        assert "destroy the input" in err and "date" in err and len(err.splitlines()) == 1, err
    assert _hash(pb) == before and rasterio.open(pa).read(1).tolist() == a.tolist()


def test_a_mapped_transition_no_point_confirms_says_so_beside_it(pair, tmp_path):
    """The interpreter sees farmland where the map says farmland -> water: the transition comes out
    0 ± 0 ha, which every report must mark as unconfirmed, not as a measured zero."""
    import json

    from stars_core.accuracy.assess import assess
    from stars_core.accuracy.report import UNCONFIRMED, as_dict, text, to_csv, to_html

    pa, pb, a, b = pair
    b = b.copy()
    b[5:8, 70:73] = 3  # 9 pixels mapped farmland -> water, none of them real
    pb = _map(tmp_path / "b9.tif", b)
    truth = (lambda r, c: (a[r, c], a[r, c] if b[r, c] == 3 and a[r, c] == 2 else b[r, c]))
    result = assess(*_sampled(pa, pb, a, b, tmp_path / "run", truth=truth))
    k = list(result.estimate.names).index("farmland -> water")
    assert result.estimate.area[k] == 0 and result.estimate.area_se[k] == 0
    row = next(r for r in json.loads(json.dumps(as_dict(result)))["per_class"] if r["class"] == "farmland -> water")
    assert row["area_note"] == UNCONFIRMED
    assert [r["class"] for r in as_dict(result)["per_class"] if r["area_note"]] == ["farmland -> water"]
    line = next(l for l in text(result).splitlines() if l.startswith("farmland -> water"))
    assert "never confirmed by a sample point" in line
    assert sum("never confirmed" in l for l in text(result).splitlines() if not l.startswith("note")) == 1
    csv_row = next(r for r in csv.DictReader(to_csv(result).split("\n\n")[0].splitlines())
                   if r["class"] == "farmland -> water")
    assert csv_row["area_note"] == UNCONFIRMED
    assert UNCONFIRMED.replace("'", "&#x27;") in to_html(result)


LONG = ClassTable((1, 2, 3), ("broadleaf forest", "arable farmland", "open water"), CLASSES.colors)


def test_assess_help_and_the_sample_summary_read_right(pair, tmp_path, capsys):
    """Help text without doubled %; the sample's size said once, and its long transition names aligned."""
    from stars_core.change import change_map

    with pytest.raises(SystemExit):
        cli_main(["assess", "--help"])
    helped = capsys.readouterr().out
    assert "95 % interval" in " ".join(helped.split()) and "%%" not in helped
    pa, pb, a, b = pair
    la, lb = _map(tmp_path / "la.tif", a, classes=LONG), _map(tmp_path / "lb.tif", b, classes=LONG)
    change_map(la, lb, tmp_path / "c.tif", log=lambda m: None)
    capsys.readouterr()
    assert cli_main(["sample", str(tmp_path / "c.tif"), str(tmp_path / "s.gpkg"), "--n", "60",
                     "--min-per-class", "5"]) == 0
    out, err = capsys.readouterr()
    assert "60 points (given)" in err and not re.search(r"\d+ points: \d+ points", err), err
    strata = [l for l in out.splitlines() if " points of " in l]
    assert len(strata) == 9 and len({l.index(" points of ") for l in strata}) == 1, out


@pytest.fixture
def long_names(pair, tmp_path):
    """An assessed change sample of maps with long class names (every stratum of 2 points or more, so
    every estimate has its interval), and the two dates' arrays."""
    from stars_core.accuracy.assess import assess

    pa, pb, a, b = pair
    b = b.copy()
    b[5:8, 70:73] = 3  # 9 pixels farmland -> water
    la, lb = _map(tmp_path / "la.tif", a, classes=LONG), _map(tmp_path / "lb.tif", b, classes=LONG)
    return assess(*_sampled(la, lb, a, b, tmp_path / "run")), a, b


def test_a_change_report_names_unchanged_classes_and_gives_each_date_its_mapped_area_and_accuracy(long_names):
    from stars_core.accuracy.report import as_dict, text, to_csv, to_html

    result, a, b = long_names
    report = text(result)
    assert "broadleaf forest (unchanged)" in report and "broadleaf forest -> arable farmland" in report
    assert as_dict(result)["classes"][:3] == [f"{n} (unchanged)" for n in LONG.names]
    valid = (a > 0) & (b > 0)
    for key, m in (("first", a), ("second", b)):
        got = [r["mapped_ha"] for r in as_dict(result)["dates"][key]["per_class"]]
        np.testing.assert_allclose(got, [((m == v) & valid).sum() * 0.01 for v in (1, 2, 3)], rtol=1e-9)
    section = report.split("class areas at the second date")[1].split("note:")[0]
    assert "mapped ha" in section and "user" in section and "producer" in section
    water = next(l for l in section.splitlines() if l.strip().startswith("open water"))
    assert water.count("±") == 3, water  # estimated area, user's and producer's accuracy, each with its interval
    assert f"{((b == 3) & valid).sum() * 0.01:,.2f}" in water.split()[2]
    dates_csv = list(csv.DictReader(to_csv(result).split("\n\n")[2].splitlines()))
    assert dates_csv[0]["date"] == "second" and {"mapped_ha", "users_ci95", "producers_ci95"} <= set(dates_csv[0])
    assert all(r["users_ci95"] != "" and r["producers_ci95"] != "" for r in dates_csv)
    page = to_html(result)
    assert page.count("<th>producer's</th>") == 3 and page.count("<th>mapped ha</th>") == 3


def test_a_change_report_gives_hectares_to_2_decimals_and_wraps_its_notes(long_names):
    from stars_core.accuracy.report import text, to_html

    result, *_ = long_names
    report, page = text(result), to_html(result)
    assert "<td>4.00</td>" in page and "<td>4.000</td>" not in page  # the clearing: 400 pixels of 0.01 ha
    assert any(l.startswith("broadleaf forest -> arable farmland") and " 4.00 " in l for l in report.splitlines())
    assert any("area intervals of zero width" in l for l in report.splitlines())
    assert all(len(l) <= 110 for l in report.splitlines() if l.startswith(("note", "      "))), report


def test_a_change_of_a_series_period_never_writes_over_a_map_of_the_series(pair, tmp_path, capsys):
    """A period's maps are read into a temporary composite, but they are inputs all the same: the
    files series.csv names are protected, and only those (a change map in the folder runs again)."""
    pa, pb, a, b = pair
    series = tmp_path / "series"
    series.mkdir()
    for date, path in (("2024-01-01", pa), ("2024-02-01", pb), ("2024-03-01", pb)):
        (series / f"{date}.tif").write_bytes(path.read_bytes())
    (series / "series.csv").write_text("date,source,map,filtered\n" + "".join(
        f"{d},x,{d}.tif,{f}\n" for d, f in (("2024-01-01", ""), ("2024-02-01", "smooth.tif"), ("2024-03-01", ""))))
    (series / "smooth.tif").write_bytes(pb.read_bytes())  # filtered, named otherwise than a series does; not read
    before = {p.name: _hash(p) for p in series.iterdir()}
    for target in ("2024-01-01.tif", "series.csv", "smooth.tif", "2024-02-01_filtered.tif"):
        capsys.readouterr()
        assert cli_main(["change", "--series", str(series), "--from", "2024-01-01:2024-02-01", "--to", "2024-03-01",
                         str(series / target)]) == 2
        err = capsys.readouterr().err.strip()
        assert "destroy the input" in err and len(err.splitlines()) == 1, err
    assert {p.name: _hash(p) for p in series.iterdir()} == before
    for _ in range(2):  # the change map and the period's map written into the folder, then again over them
        assert cli_main(["change", "--series", str(series), "--from", "2024-01-01:2024-02-01", "--to", "2024-03-01",
                         str(series / "change.tif")]) == 0, capsys.readouterr().err
    assert {p.name: _hash(p) for p in series.iterdir() if p.name in before} == before
    assert (series / "change_from.tif").is_file()
