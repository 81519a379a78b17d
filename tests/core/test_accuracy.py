"""Design-based accuracy and area (stars_core/accuracy): the worked example of Olofsson et al.
(2014, section 5) and its sample-size example, checked against the published numbers; the 95 %
intervals cover the true class areas about 95 % of the time on a synthetic map with known truth;
allocation rules."""
import numpy as np
import pytest

from stars_core.accuracy import allocate, estimate, sample_size
from stars_core.errors import InputError

# Olofsson et al. 2014, section 5 (Tables 8 and 9): strata of 30 m pixels, sample counts with rows
# the map class and columns the reference class.
NAMES = ["deforestation", "forest gain", "stable forest", "stable non-forest"]
PIXELS = np.array([200_000, 150_000, 3_200_000, 6_450_000])
HA_PER_PIXEL = 0.09
COUNTS = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])


def test_the_worked_example_of_olofsson_et_al_2014():
    e = estimate(COUNTS, PIXELS, NAMES, area=PIXELS * HA_PER_PIXEL)
    # Table 9: the error matrix in area proportions (four decimals as printed)
    np.testing.assert_allclose(e.proportions[0], [0.0176, 0, 0.0013, 0.0011], atol=5e-5)
    np.testing.assert_allclose(e.proportions[3], [0.0040, 0.0020, 0.0179, 0.6212], atol=5e-5)
    # areas, ha, +/- 95 % (published: 21,158 +/- 6,158; 11,686 +/- 3,756; 285,770 +/- 15,510; 581,386 +/- 16,282)
    np.testing.assert_allclose(e.area, [21_158, 11_686, 285_770, 581_386], atol=1)
    np.testing.assert_allclose([e.ci95(s) for s in e.area_se], [6_158, 3_756, 15_510, 16_282], atol=1)
    # user's accuracies 0.88 +/- 0.07, 0.73 +/- 0.10, 0.93 +/- 0.04, 0.96 +/- 0.02
    np.testing.assert_allclose(e.users, [0.88, 0.73, 0.93, 0.96], atol=0.005)
    np.testing.assert_allclose([e.ci95(s) for s in e.users_se], [0.07, 0.10, 0.04, 0.02], atol=0.005)
    # producer's accuracies 0.75 +/- 0.21, 0.85, 0.93 +/- 0.03, 0.96; the paper prints +/- 0.23 and
    # +/- 0.01 for the second and fourth, which its own equation gives as 0.25 and 0.02 (a rounding
    # slip noted by other implementations): the equation's values are checked
    np.testing.assert_allclose(e.producers, [0.75, 0.85, 0.93, 0.96], atol=0.005)
    np.testing.assert_allclose([e.ci95(s) for s in e.producers_se], [0.2133, 0.2544, 0.0343, 0.0184], atol=5e-4)
    # overall accuracy 0.95 +/- 0.02
    assert e.overall == pytest.approx(0.9465, abs=5e-4) and e.ci95(e.overall_se) == pytest.approx(0.0185, abs=5e-4)
    # deforestation in pixels: 235,086 +/- 68,418 as printed, without the finite-population correction;
    # with it (f_i about 1/2000 here) 68,416
    px = estimate(COUNTS, PIXELS, NAMES)
    assert px.area[0] == pytest.approx(235_086, abs=1) and px.ci95(px.area_se[0]) == pytest.approx(68_416, abs=1)
    assert e.notes == []


def test_the_sample_size_example():
    # S(O) = 0.01 with expected user's accuracies 0.7, 0.6, 0.9, 0.95 on the same strata: n = 641
    assert sample_size(PIXELS / PIXELS.sum(), [0.7, 0.6, 0.9, 0.95], 0.01, population=PIXELS.sum()) == 641
    assert sample_size(PIXELS / PIXELS.sum(), [0.7, 0.6, 0.9, 0.95], 0.01) == 641
    with pytest.raises(InputError, match="between 0 and 1"):
        sample_size([0.5, 0.5], [0.9, 1.0], 0.01)


def test_a_stratum_with_one_point_gives_no_interval_and_says_so():
    counts = COUNTS.copy()
    counts[1] = [0, 1, 0, 0]
    e = estimate(counts, PIXELS, NAMES, area=PIXELS * HA_PER_PIXEL)
    assert e.overall_se is None and all(s is None for s in e.area_se) and e.users_se[1] is None
    assert e.users_se[0] is not None  # a stratum's own user's accuracy still has its interval
    assert len(e.notes) == 1 and "forest gain has 1 labelled point" in e.notes[0]


def test_allocation_gives_rare_classes_their_minimum_and_the_rest_proportionally():
    counts = allocate(641, PIXELS, "proportional", minimum=50)
    assert sum(counts) == 641 and counts[:2] == [50, 50]
    assert counts[3] / counts[2] == pytest.approx(PIXELS[3] / PIXELS[2], rel=0.01)
    assert allocate(10, [5, 100], "proportional", minimum=50) == [5, 50]  # the minimum wins; capped at the pixels
    assert allocate(8, [100, 100, 100], "equal") == [3, 3, 2]
    assert allocate(0, [100, 100], given={0: 20, 1: 30}) == [20, 30]


def test_the_intervals_cover_the_true_areas_about_95_percent_of_the_time():
    """A synthetic map of 60,000 pixels whose true classes are known: 400 seeded stratified samples
    of 60 points per map class; each class area's 95 % interval should hold the true area in about
    95 % of them (binomial spread over 400 repeats: about 1 point)."""
    rng = np.random.default_rng(0)
    K, N = 3, 60_000
    truth = rng.choice(K, N, p=[0.6, 0.3, 0.1])
    confusion = np.array([[0.85, 0.10, 0.05], [0.15, 0.80, 0.05], [0.20, 0.10, 0.70]])  # P(map | truth)
    mapped = np.array([rng.choice(K, p=confusion[t]) for t in truth])
    true_area = np.bincount(truth, minlength=K)
    pixels = np.bincount(mapped, minlength=K)
    by_stratum = [np.flatnonzero(mapped == k) for k in range(K)]
    hits = np.zeros(K)
    reps = 400
    for r in range(reps):
        draw = np.random.default_rng(1000 + r)
        counts = np.zeros((K, K), np.int64)
        for k in range(K):
            chosen = draw.choice(by_stratum[k], 60, replace=False)
            counts[k] = np.bincount(truth[chosen], minlength=K)
        e = estimate(counts, pixels)
        hits += np.abs(e.area - true_area) <= np.array([e.ci95(s) for s in e.area_se])
    coverage = hits / reps
    assert np.all((coverage > 0.91) & (coverage < 0.985)), coverage


# -- the sample file and the assessment on a real map ---------------------------------------------
def _label_from(sample_path, labels_path, skip=()):
    """An interpreter stand-in: each point gets the demo's reference class where it lies."""
    import rasterio
    from osgeo import ogr

    ds = ogr.Open(str(sample_path), 1)
    layer = ds.GetLayerByName("sample")
    with rasterio.open(labels_path) as lab:
        for f in layer:
            if f.GetField("id") in skip:
                continue
            g = f.GetGeometryRef()
            row, col = lab.index(g.GetX(), g.GetY())
            value = int(lab.read(1, window=((row, row + 1), (col, col + 1)))[0, 0])
            if value != 0:  # the reference has no class there (no data): left blank, as an interpreter would
                f.SetField("reference", value)
                layer.SetFeature(f)
    ds = None


def test_a_sample_is_stratified_seeded_and_on_pixel_centres(landcover, tmp_path):
    import rasterio

    from stars_core.accuracy.sample import count_strata, draw_sample, read_sample

    a = draw_sample(landcover, tmp_path / "a.gpkg", n=120, minimum=10, seed=3, log=lambda *_: None)
    b = draw_sample(landcover, tmp_path / "b.gpkg", n=120, minimum=10, seed=3, log=lambda *_: None)
    c = draw_sample(landcover, tmp_path / "c.gpkg", n=120, minimum=10, seed=4, log=lambda *_: None)
    sa, sb, sc = (read_sample(p) for p in (a.path, b.path, c.path))
    assert np.array_equal(sa.xy, sb.xy) and not np.array_equal(sa.xy, sc.xy)  # seeded
    strata = count_strata(landcover)
    assert sa.strata.pixels == strata.pixels and sum(a.points) == len(sa.ids) == a.total
    with rasterio.open(landcover) as ds:
        data = ds.read(1)
        for (x, y), value in zip(sa.xy, sa.map_values):
            col, row = ~ds.transform * (x, y)
            assert col % 1 == pytest.approx(0.5) and row % 1 == pytest.approx(0.5)  # pixel centres
            assert data[int(row), int(col)] == value != 255  # on the stratum it names, never no-data
    per_class = {v: sa.map_values.count(v) for v in sa.strata.values}
    assert [per_class[v] for v in sa.strata.values] == a.points
    assert len(set(map(tuple, sa.xy))) == len(sa.ids)  # no pixel twice
    assert all(r is None for r in sa.references)


def test_sample_label_and_assess_on_the_demo_map(landcover, demo_scene, tmp_path, capsys):
    import json

    from stars_core.cli import main as cli_main

    sample = tmp_path / "sample.gpkg"
    assert cli_main(["sample", str(landcover), str(sample), "--n", "200", "--min-per-class", "20"]) == 0
    _label_from(sample, demo_scene["labels"], skip={1, 2})
    capsys.readouterr()
    report = tmp_path / "report.json"
    assert cli_main(["assess", str(landcover), str(sample), "--json", str(report), "--csv", str(tmp_path / "r.csv"),
                     "--html", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr().out
    r = json.loads(report.read_text())
    left = r["unlabelled_points"]
    assert out.startswith("overall accuracy ") and f"{len(left)} unlabelled point(s) left out: 1, 2" in out
    assert left[:2] == [1, 2] and r["labelled_points"] == 200 - len(left) and 0 < r["overall_accuracy"] <= 1
    assert sum(c["area_ha"] for c in r["per_class"]) == pytest.approx(r["mapped_area_ha"])
    assert sum(c["mapped_ha"] for c in r["per_class"]) == pytest.approx(r["mapped_area_ha"])
    page = (tmp_path / "r.html").read_text()
    assert "<table" in page and "<svg" in page and page.count("<circle") == sum(c["area_ha"] > 0 or c["mapped_ha"] > 0 for c in r["per_class"])
    assert (tmp_path / "r.csv").read_text().startswith("value,")


@pytest.mark.parametrize("damage,message", [
    ("reference=99", "have reference values outside the class table"),
    ("move", "lie outside"),
    ("map_value", "have a map_value that differs from the map"),
    ("strata", "does not match"),
    ("nothing", "no point of"),
])
def test_bad_samples_are_refused_in_one_line(landcover, demo_scene, tmp_path, capsys, damage, message):
    from osgeo import ogr

    from stars_core.cli import main as cli_main

    sample = tmp_path / "sample.gpkg"
    assert cli_main(["sample", str(landcover), str(sample), "--n", "60", "--min-per-class", "5"]) == 0
    if damage != "nothing":
        _label_from(sample, demo_scene["labels"])
    ds = ogr.Open(str(sample), 1)
    layer = ds.GetLayerByName("sample" if damage != "strata" else "strata")
    f = layer.GetNextFeature()
    if damage == "reference=99":
        f.SetField("reference", 99)
    elif damage == "move":
        g = f.GetGeometryRef()
        g.SetPoint_2D(0, g.GetX() + 1e6, g.GetY())
        f.SetGeometry(g)
    elif damage == "map_value":
        f.SetField("map_value", 255 - f.GetField("map_value") if f.GetField("map_value") != 1 else 2)
    elif damage == "strata":
        f.SetField("pixels", f.GetField("pixels") + 1)
    layer.SetFeature(f)
    ds = None
    capsys.readouterr()
    assert cli_main(["assess", str(landcover), str(sample), "--json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "r.json").exists()


def test_a_stratum_without_sampled_error_gets_a_wilson_interval_and_a_note():
    counts = COUNTS.copy()
    counts[0] = [30, 0, 0, 0]  # 30 points, all right: Olofsson's interval is 1.00 +/- 0.00
    e = estimate(counts, PIXELS, NAMES, area=PIXELS * HA_PER_PIXEL)
    assert e.users[0] == 1.0 and e.ci95(e.users_se[0]) == 0.0
    lo, hi = e.users_wilson[0]
    assert hi == pytest.approx(1.0) and 0.85 < lo < 0.9  # Wilson 30/30: 0.886-1.000
    assert any("not informative" in n and "deforestation (30 points, all right" in n for n in e.notes)
    lo1, hi1 = e.users_wilson[1]
    assert lo1 < e.users[1] < hi1  # an ordinary stratum's Wilson interval holds its estimate


def test_a_map_class_with_no_labelled_point_is_refused():
    counts = COUNTS.copy()
    counts[1] = 0
    with pytest.raises(ValueError, match="forest gain have no labelled point.*biased"):
        estimate(counts, PIXELS, NAMES, area=PIXELS * HA_PER_PIXEL)


def _sample(landcover, demo_scene, tmp_path, n="60"):
    from stars_core.cli import main as cli_main

    sample = tmp_path / "sample.gpkg"
    assert cli_main(["sample", str(landcover), str(sample), "--n", n, "--min-per-class", "5"]) == 0
    _label_from(sample, demo_scene["labels"])
    return sample


def _assess(landcover, sample, capsys, code=0):
    from stars_core.cli import main as cli_main

    capsys.readouterr()
    assert cli_main(["assess", str(landcover), str(sample)]) == code
    out = capsys.readouterr()
    if code:
        assert "Traceback" not in out.err and len(out.err.strip().splitlines()) == 1, out.err
    return out.out if code == 0 else out.err


def test_points_added_by_hand_without_id_or_map_value_are_filled_from_the_map(landcover, demo_scene, tmp_path,
                                                                              capsys):
    from osgeo import ogr

    sample = _sample(landcover, demo_scene, tmp_path)
    ds = ogr.Open(str(sample), 1)
    layer = ds.GetLayerByName("sample")
    first = layer.GetNextFeature()
    g = first.GetGeometryRef()
    f = ogr.Feature(layer.GetLayerDefn())  # the documented route: a point copied in, labelled, no id or map_value
    f.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({g.GetX() + 2 * 2.0} {g.GetY()})"))
    f.SetField("reference", first.GetField("reference") or 1)
    layer.CreateFeature(f)
    fid = f.GetFID()
    ds = None
    out = _assess(landcover, sample, capsys)
    assert f"1 point(s) added by hand (no id; named by feature id {fid}): map value read from the map" in out


@pytest.mark.parametrize("damage,message", [
    ("stratum", "have no labelled point"),
    ("duplicate", "lie in the same place"),
    ("same id", "appear on more than one point"),
    ("real", "field `reference` of points"),
    ("unknown name", "is neither a class value nor a class name"),
    ("empty", "holds no point"),
])
def test_samples_that_would_bias_the_estimates_are_refused(landcover, demo_scene, tmp_path, capsys, damage, message):
    from osgeo import ogr

    sample = _sample(landcover, demo_scene, tmp_path)
    ds = ogr.Open(str(sample), 1)
    layer = ds.GetLayerByName("sample")
    feats = list(layer)
    if damage == "stratum":
        first = feats[0].GetField("map_value")
        for f in feats:
            if f.GetField("map_value") == first:
                layer.DeleteFeature(f.GetFID())
    elif damage in ("duplicate", "same id"):
        copy = feats[0].Clone()
        copy.SetFID(-1)
        if damage == "same id":
            copy.SetGeometry(feats[1].GetGeometryRef())
            copy.SetField("map_value", feats[1].GetField("map_value"))
        else:
            copy.SetField("id", 9999)
        layer.CreateFeature(copy)
    elif damage in ("real", "unknown name"):
        fid = feats[0].GetFID()
        feats = None  # features of the old field definition must go before it changes
        idx = layer.GetLayerDefn().GetFieldIndex("reference")
        kind = ogr.OFTReal if damage == "real" else ogr.OFTString
        assert layer.AlterFieldDefn(idx, ogr.FieldDefn("reference", kind), ogr.ALTER_TYPE_FLAG) == 0
        f = layer.GetFeature(fid)
        f.SetField("reference", 3.5 if damage == "real" else "swamp")
        layer.SetFeature(f)
        f = None
    elif damage == "empty":
        for f in feats:
            layer.DeleteFeature(f.GetFID())
    ds = None
    assert message in _assess(landcover, sample, capsys, code=2)


def test_references_as_class_names_and_a_reprojected_sample_are_read(landcover, demo_scene, tmp_path, capsys):
    from osgeo import gdal, ogr

    sample = _sample(landcover, demo_scene, tmp_path)
    expected = _assess(landcover, sample, capsys).splitlines()[0]
    src = ogr.Open(str(sample))
    names = {f.GetField("value"): f.GetField("name") for f in src.GetLayerByName("strata")}
    src = None
    ds = ogr.Open(str(sample), 1)
    layer = ds.GetLayerByName("sample")
    values = {f.GetFID(): f.GetField("reference") for f in layer}
    layer.ResetReading()
    idx = layer.GetLayerDefn().GetFieldIndex("reference")
    assert layer.AlterFieldDefn(idx, ogr.FieldDefn("reference", ogr.OFTString), ogr.ALTER_TYPE_FLAG) == 0
    for fid, v in values.items():
        f = layer.GetFeature(fid)
        if v is not None:
            f.SetField("reference", names[v].upper())  # typed by hand
            layer.SetFeature(f)
    ds = None
    assert _assess(landcover, sample, capsys).splitlines()[0] == expected
    moved = tmp_path / "wgs84.gpkg"
    gdal.VectorTranslate(str(moved), str(sample), dstSRS="EPSG:4326", layerName=None)
    out = _assess(landcover, moved, capsys)
    assert out.splitlines()[0] == expected and "the sample is in EPSG:4326" in out


def test_a_labelled_sample_is_never_overwritten_without_the_flag(landcover, demo_scene, tmp_path, capsys):
    import hashlib

    from stars_core.cli import main as cli_main

    sample = _sample(landcover, demo_scene, tmp_path)
    before = hashlib.sha256(sample.read_bytes()).hexdigest()
    capsys.readouterr()
    assert cli_main(["sample", str(landcover), str(sample), "--n", "60"]) == 2
    err = capsys.readouterr().err
    assert "labelled point(s)" in err and "--replace-labelled" in err and "Adding points later" in err
    assert hashlib.sha256(sample.read_bytes()).hexdigest() == before
    assert cli_main(["sample", str(landcover), str(sample), "--n", "60", "--replace-labelled"]) == 0
    assert hashlib.sha256(sample.read_bytes()).hexdigest() != before
    assert cli_main(["sample", str(landcover), str(sample), "--n", "60"]) == 0  # unlabelled: no loss, no refusal


# Stehman (2014), the numerical example (Table 2): 40 points, 10 in each of strata A-D of 40,000,
# 30,000, 20,000 and 10,000 pixels, as the mapaccuracy R package's documentation lists them.
S14_STRATA = ["A"] * 10 + ["B"] * 10 + ["C"] * 10 + ["D"] * 10
S14_MAP = ["A"] * 7 + ["B"] * 3 + ["A"] + ["B"] * 11 + ["C"] * 6 + ["B", "B"] + ["D"] * 10
S14_REF = (["A"] * 5 + ["C", "B", "A", "B", "C", "A"] + ["B"] * 5 + ["A", "A", "B", "B"] + ["C"] * 5
           + ["D", "D", "B", "B", "A"] + ["D"] * 7 + ["C", "C", "B"])
S14_SIZES = {"A": 40_000, "B": 30_000, "C": 20_000, "D": 10_000}


def test_stehman_2014_numerical_example():
    from stars_core.accuracy.stehman import stehman_estimate

    assert len(S14_MAP) == len(S14_REF) == 40
    e = stehman_estimate(S14_STRATA, S14_MAP, S14_REF, S14_SIZES, ["A", "B", "C", "D"])
    # user's accuracy of class A: 0.742 with SE 0.165 (Stehman 2014; mapac's aa_stratified documentation)
    assert e.users[0] == pytest.approx(0.742, abs=5e-4) and e.users_se[0] == pytest.approx(0.165, abs=5e-4)
    # area shares of reference classes A and C: 0.35 and 0.20 (by hand: sum_h N_h * share_h / N)
    assert e.area_share[0] == pytest.approx(0.35) and e.area_share[2] == pytest.approx(0.20)
    assert e.area_share.sum() == pytest.approx(1.0) and e.proportions.sum() == pytest.approx(1.0)
    assert e.overall == pytest.approx(np.trace(e.proportions))
    assert e.users[1] == pytest.approx(e.proportions[1, 1] / e.proportions[1].sum())  # a ratio of totals
    assert e.producers[1] == pytest.approx(e.proportions[1, 1] / e.proportions[:, 1].sum())


def test_stehman_equals_olofsson_when_the_strata_are_the_map_classes():
    """With strata = map classes the two estimators are the same (Stehman 2014, section 4), up to the
    finite-population correction Olofsson's formulas leave out (negligible here)."""
    from stars_core.accuracy.stehman import stehman_estimate

    names = list(range(4))
    strata, mapped, ref = [], [], []
    for i in range(4):
        for j in range(4):
            strata += [i] * int(COUNTS[i, j])
            mapped += [i] * int(COUNTS[i, j])
            ref += [j] * int(COUNTS[i, j])
    s = stehman_estimate(strata, mapped, ref, dict(enumerate(PIXELS.tolist())), names)
    o = estimate(COUNTS, PIXELS)
    np.testing.assert_allclose(s.area_share, o.area_share, atol=1e-12)
    np.testing.assert_allclose(s.users, o.users, atol=1e-12)
    np.testing.assert_allclose(s.producers, o.producers, atol=1e-12)
    np.testing.assert_allclose(s.area_share_se, o.area_share_se, rtol=2e-3)
    np.testing.assert_allclose(s.users_se, o.users_se, rtol=2e-3)
    assert s.overall == pytest.approx(o.overall) and s.overall_se == pytest.approx(o.overall_se, rel=2e-3)


def test_stehman_intervals_cover_the_true_areas_of_a_map_stratified_by_another():
    """Class areas of date B estimated from a sample stratified by a change map (strata != the map's
    classes): the 95 % intervals hold the true share in about 95 % of 300 seeded samples."""
    from stars_core.accuracy.stehman import stehman_estimate

    rng = np.random.default_rng(5)
    N = 40_000
    truth = rng.choice(3, N, p=[0.5, 0.35, 0.15])
    mapped = np.where(rng.random(N) < 0.85, truth, rng.choice(3, N))
    strata = np.where(rng.random(N) < 0.05, 9, mapped)  # a rare "change" stratum cutting across the classes
    sizes = {h: int((strata == h).sum()) for h in np.unique(strata)}
    true_share = np.bincount(truth, minlength=3) / N
    hits, reps = np.zeros(3), 300
    for r in range(reps):
        draw = np.random.default_rng(100 + r)
        idx = np.concatenate([draw.choice(np.flatnonzero(strata == h), 40, replace=False) for h in sizes])
        e = stehman_estimate(strata[idx], mapped[idx], truth[idx], sizes, [0, 1, 2])
        hits += np.abs(e.area_share - true_share) <= 1.96 * np.array(e.area_share_se)
    coverage = hits / reps
    assert np.all((coverage > 0.9) & (coverage < 0.99)), coverage


# -- per-date class areas of a change-map sample: standard errors worked by hand ---------------------
def _date_map(path, data):
    import rasterio
    from rasterio.transform import from_origin

    from stars_core.classes import ClassTable
    from stars_core.classmap import style_class_map

    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500_000, 5_000_000, 10.0, 10.0), nodata=0) as ds:
        ds.write(data.astype(np.uint8), 1)
    style_class_map(path, ClassTable((1, 2, 3), ("forest", "farmland", "water"), ("#1a9850", "#fee08b", "#4575b4")))
    return path


@pytest.fixture
def change_sample(tmp_path):
    """A 10 x 10 pair of 10 m maps (100 pixels of 0.01 ha): strata forest (60 pixels, 10 points),
    forest -> farmland (4 pixels, 4 points: a census), farmland (35 pixels, 6 points) and farmland ->
    water (1 pixel, 1 point: a census). An imperfect interpreter: 2 forest points were cleared by date B
    (omitted change), 1 mapped clearing is still forest, 1 farmland point is forest at both dates."""
    from osgeo import ogr

    from stars_core.accuracy.sample import draw_sample
    from stars_core.change import change_map

    a = np.ones((10, 10), np.uint8)
    a[6:, :9] = 2
    b = a.copy()
    b[6:, 9] = 2  # 4 pixels cleared
    b[9, 0] = 3  # 1 pixel of farmland flooded
    pa, pb = _date_map(tmp_path / "a.tif", a), _date_map(tmp_path / "b.tif", b)
    change_map(pa, pb, tmp_path / "c.tif", log=lambda m: None)
    per_class = {"forest": 10, "forest -> farmland": 4, "farmland": 6, "farmland -> water": 1}
    draw_sample(tmp_path / "c.tif", tmp_path / "s.gpkg", per_class=per_class, log=lambda m: None)
    wrong = {"forest": [(1, 2), (1, 2)], "forest -> farmland": [(1, 1)], "farmland": [(1, 1)]}  # (from, to)
    right = {"forest": (1, 1), "forest -> farmland": (1, 2), "farmland": (2, 2), "farmland -> water": (2, 3)}
    ds = ogr.Open(str(tmp_path / "s.gpkg"), 1)
    names = {f.GetField("value"): f.GetField("name") for f in ds.GetLayerByName("strata")}
    layer = ds.GetLayerByName("sample")
    seen: dict[str, int] = {}
    for f in sorted(layer, key=lambda f: f.GetField("id")):
        name = names[f.GetField("map_value")]
        k = seen[name] = seen.get(name, -1) + 1
        ref = wrong[name][k] if k < len(wrong.get(name, [])) else right[name]
        f.SetField("reference_from", ref[0])
        f.SetField("reference_to", ref[1])
        layer.SetFeature(f)
    layer = ds = None
    assert sum(seen.values()) + len(seen) == 21
    return tmp_path / "c.tif", tmp_path / "s.gpkg"


def test_per_date_standard_errors_of_a_change_sample_match_a_hand_computation(change_sample):
    """Sampling fractions 1/6, 6/35 and two censuses, so the finite-population correction is large:
    V = sum_h N_h^2 (1 - n_h/N_h) s2_h / n_h in pixels^2 (Stehman 2014, eq. 25), a census adding 0."""
    from stars_core.accuracy.assess import assess

    result = assess(*change_sample)
    farmland = 1
    _, first = result.dates["first"]
    _, second = result.dates["second"]
    # date B, farmland: forest 2 of 10 (s2 = 10 * 0.2 * 0.8 / 9), farmland 5 of 6 (s2 = 1/6),
    # forest -> farmland 3 of 4 and farmland -> water 0 of 1, both sampled whole
    v_forest = 60 ** 2 * (1 - 10 / 60) * (10 * 0.2 * 0.8 / 9) / 10  # 53.33 pixels^2
    v_farmland = 35 ** 2 * (1 - 6 / 35) * (1 / 6) / 6  # 28.19 pixels^2
    assert v_forest == pytest.approx(160 / 3) and v_farmland == pytest.approx(1015 / 36)
    assert second.area_share[farmland] == pytest.approx((60 * 0.2 + 4 * 0.75 + 35 * 5 / 6) / 100)
    assert second.area_share_se[farmland] == pytest.approx(np.sqrt(v_forest + v_farmland) / 100, rel=1e-9)
    # date A, farmland: only the farmland stratum is uncertain (5 of 6), 1 water pixel known farmland
    assert first.area_share[farmland] == pytest.approx((35 * 5 / 6 + 1) / 100)
    assert first.area_share_se[farmland] == pytest.approx(np.sqrt(v_farmland) / 100, rel=1e-9)
    # the transition forest -> farmland (Olofsson): 2 of 10 forest points, 3 of 4 mapped clearings
    e = result.estimate
    k = e.names.index("forest -> farmland")
    assert e.area[k] == pytest.approx((60 * 0.2 + 3) * 0.01)
    assert e.area_se[k] == pytest.approx(np.sqrt(v_forest) * 0.01, rel=1e-9)
    assert e.total_area == pytest.approx(1.0)  # ha: the estimates above in pixels / 100


def test_stehman_with_large_sampling_fractions_and_a_census_stratum():
    """The numerical example's points with strata a thousand times smaller (40, 30, 20 and 10 pixels):
    half of C is sampled and D whole, so only C's 2 of 10 points of reference class D vary:
    V(share of D) = 20^2 (1 - 10/20) s2_C / 10 / 100^2 with s2_C = 10 * 0.2 * 0.8 / 9."""
    from stars_core.accuracy.stehman import stehman_estimate

    small = {h: n // 1000 for h, n in S14_SIZES.items()}
    e = stehman_estimate(S14_STRATA, S14_MAP, S14_REF, small, ["A", "B", "C", "D"])
    assert e.area_share[3] == pytest.approx((20 * 0.2 + 10 * 0.7) / 100)
    assert e.area_share_se[3] == pytest.approx(np.sqrt(20 ** 2 * 0.5 * (10 * 0.2 * 0.8 / 9) / 10) / 100, rel=1e-12)
    # the same points, strata weighed by area (0.01 ha a pixel): the shares and their errors are unchanged
    ha = stehman_estimate(S14_STRATA, S14_MAP, S14_REF, small, ["A", "B", "C", "D"],
                          stratum_area={h: n * 0.01 for h, n in small.items()})
    np.testing.assert_allclose(ha.area_share_se, e.area_share_se, rtol=1e-12)
    assert ha.total == pytest.approx(1.0) and e.total == 100


@pytest.mark.parametrize("sizes,message", [({"A": 400.0, "B": 300.0, "C": 200.5, "D": 100.0}, "whole numbers"),
                                           ({"A": 400, "B": 300, "C": 200, "D": 9}, "only 9 pixels")])
def test_strata_sizes_that_cannot_be_pixel_counts_are_refused(sizes, message):
    """An area where the pixels belong (hectares of 10 m pixels: 100 times too few) would make the
    sampling fraction too large and the intervals too narrow."""
    from stars_core.accuracy.stehman import stehman_estimate

    with pytest.raises(ValueError, match=message):
        stehman_estimate(S14_STRATA, S14_MAP, S14_REF, sizes, ["A", "B", "C", "D"])
    counts = np.array([[8, 2], [1, 9]])
    with pytest.raises(ValueError, match=message):
        estimate(counts, [sizes["C"], sizes["D"]], ["C", "D"])


def test_intervals_hold_with_half_of_each_stratum_sampled():
    """A population of 600 pixels, 3 strata of 200 cutting across 3 classes, half of each stratum
    sampled (f = 1/2): the 95 % intervals of both estimators hold the true shares in about 95 % of 400
    seeded samples. Without the finite-population correction they would be sqrt(2) too wide (about
    99.4 %), with its sign flipped sqrt(3) too wide (99.9 %)."""
    from stars_core.accuracy.stehman import stehman_estimate

    rng = np.random.default_rng(7)
    strata = np.repeat([0, 1, 2], 200)
    truth = np.concatenate([rng.choice(3, 200, p=p) for p in ([0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4])])
    mapped = np.where(rng.random(600) < 0.7, strata, truth)  # the date map: not the strata
    sizes = {h: 200 for h in range(3)}
    true_share = np.bincount(truth, minlength=3) / 600
    hits, reps = np.zeros((2, 3)), 400
    for r in range(reps):
        draw = np.random.default_rng(500 + r)
        idx = np.concatenate([draw.choice(np.flatnonzero(strata == h), 100, replace=False) for h in range(3)])
        s = stehman_estimate(strata[idx], mapped[idx], truth[idx], sizes, [0, 1, 2])
        counts = np.zeros((3, 3), np.int64)
        np.add.at(counts, (strata[idx], truth[idx]), 1)
        o = estimate(counts, [200, 200, 200])
        for i, (share, se) in enumerate(((s.area_share, s.area_share_se), (o.area_share, o.area_share_se))):
            hits[i] += np.abs(share - true_share) <= 1.96 * np.array(se)
    coverage = hits / reps
    assert np.all((coverage > 0.91) & (coverage < 0.985)), coverage


def test_the_change_sample_reports_a_bootstrap_interval_beside_the_normal_one(change_sample, tmp_path):
    import csv
    import json

    from stars_core.accuracy.assess import assess
    from stars_core.accuracy.report import text, write_reports

    result = assess(*change_sample)
    again = assess(*change_sample)
    e = result.estimate
    k = e.names.index("forest -> farmland")
    lo, hi = e.area_share_boot95[k] * e.total_area
    assert lo < e.area[k] < hi and np.array_equal(e.area_share_boot95, again.estimate.area_share_boot95)  # seeded
    assert hi > e.area[k] + e.ci95(e.area_se[k])  # 2 points outside its stratum: the normal end is too low
    assert "2 point(s) of it outside the strata it makes up" in e.normal_doubt[k]
    assert any("whose normal interval (± 1.96 SE) is not to be trusted: forest (unchanged) (1 point" in n and
               "forest -> farmland (2 point(s)" in n for n in e.notes)
    write_reports(result, tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.html")
    report = json.loads((tmp_path / "r.json").read_text())
    row = report["per_class"][k]
    assert row["area_boot95_low_ha"] == pytest.approx(lo) and row["area_ci95_ha"] == pytest.approx(e.ci95(e.area_se[k]))
    farmland = report["dates"]["second"]["per_class"][1]
    assert farmland["area_boot95_low_ha"] < farmland["area_ha"] < farmland["area_boot95_high_ha"]
    assert next(csv.DictReader(open(tmp_path / "r.csv")))["area_boot95_high_ha"]
    assert "bootstrap 95 % ha" in (tmp_path / "r.html").read_text() and "bootstrap 95 %" in text(result)


def test_the_bootstrap_interval_holds_where_omission_hides_in_a_large_stratum():
    """300 seeded samples (300, 100 and 50 points): no point of the rare class is drawn from the large
    stratum in 74 % of them, and then its normal interval misses the hidden part (as the large class's
    misses the pixels it lacks): it holds the true area in under half of the samples. The bootstrap
    interval holds it in at least 93 %, and the other classes' in at least 90 %."""
    from stars_core.accuracy.intervals import bootstrap_area_intervals, normal_doubts

    # (H, K) true pixels: a rare class 2 mapped in a small stratum (2,000 pixels, 70 % right) and
    # hidden at 0.1 % in a stratum of 600,000 pixels
    truth = np.array([[599_400, 0, 600], [0, 200_000, 0], [400, 200, 1_400]])
    pixels, points, true = truth.sum(axis=1), np.array([300, 100, 50]), truth.sum(axis=0)
    hits, reps = np.zeros((2, 3)), 300
    rng = np.random.default_rng(11)
    doubted = 0
    for r in range(reps):
        x = np.stack([rng.multivariate_hypergeometric(truth[h], int(points[h])) for h in range(3)])
        e = estimate(x, pixels)
        normal = np.column_stack([e.area - 1.96 * np.array(e.area_se), e.area + 1.96 * np.array(e.area_se)])
        boot = bootstrap_area_intervals(x, pixels, pixels, draws=500, seed=r)
        for i, lim in enumerate((normal, boot)):
            hits[i] += (lim[:, 0] <= true) & (true <= lim[:, 1])
        doubted += normal_doubts(x, pixels)[2] is not None
    coverage = hits / reps
    assert coverage[0, 2] < 0.5 and coverage[0, 0] < 0.5 and coverage[1, 2] >= 0.93, coverage
    assert coverage[1, 0] >= 0.9 and coverage[1, 1] >= 0.9, coverage
    assert doubted == reps  # the rare class's normal interval is always flagged here


def test_the_bootstrap_spread_is_the_estimators_finite_population_correction_included():
    """A stratum of 200 pixels, half sampled, 40 of 100 points of class 0: the plain percentile
    bootstrap (no added point) spans 2 x 1.96 standard errors, the correction included; strata sampled
    whole give the estimate itself at both ends, whatever the added points."""
    from stars_core.accuracy.intervals import bootstrap_area_intervals

    counts = np.array([[40, 60], [3, 7]])
    pixels = np.array([200, 10])
    e = estimate(counts, pixels)
    plain = bootstrap_area_intervals(counts, pixels, pixels, draws=20_000, one_more=False)
    assert (plain[0, 1] - plain[0, 0]) / 2 == pytest.approx(e.ci95(e.area_se[0]), rel=0.05)
    assert e.area_se[0] == pytest.approx(200 * np.sqrt(0.5 * 0.4 * 0.6 / 99))  # (the census adds 0)
    whole = bootstrap_area_intervals(counts, [100, 10], [100, 10])
    np.testing.assert_allclose(whole, np.column_stack([[43, 67], [43, 67]]))


def test_the_normal_interval_is_doubted_where_few_points_of_a_class_lie_outside_its_strata():
    """Class 1 is mapped in stratum 1 (only 8 of its 20 points right) and hides in stratum 0, where 2
    of 100 points show it: 2 points outside the strata it makes up, however badly it is mapped."""
    from stars_core.accuracy.intervals import normal_doubts

    counts = np.array([[98, 2], [12, 8]])
    doubts = normal_doubts(counts, [1000, 100], np.eye(2, dtype=bool))
    assert doubts[0] is None and doubts[1] == "2 point(s) of it outside the strata it makes up"
    unanimous = normal_doubts([[100, 0], [12, 8]], [1000, 100], np.eye(2, dtype=bool))
    assert unanimous[0] == "every point of a stratum of it agreed" and unanimous[1] is not None
    assert normal_doubts([[100, 0], [12, 8]], [100, 100], np.eye(2, dtype=bool))[0] is None  # sampled whole
