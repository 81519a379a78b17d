"""A map per date of a SAR series (stars_core/change/series.py) and the generated series with known
changes (change/demo_series.py): dates read from names, metadata or a table; every map on one grid;
one model load; a rerun skips what is done; compact probabilities; the refusals."""
import numpy as np
import pytest
import rasterio

from stars_core.cli import main as cli_main
from stars_core.errors import InputError

SEG = ["--tile-size", "128", "--device", "cpu", "--runtime", "torch"]


@pytest.fixture(scope="module")
def series(demo_scene, tmp_path_factory):
    """Four dates over the session's demo scene (same size and seed: date 1's labels are the scene's)."""
    from stars_core.change.demo_series import make_demo_series

    folder = tmp_path_factory.mktemp("series")
    return make_demo_series(folder, 4, size=256, seed=1)


def test_the_generated_series_starts_from_the_scene_and_changes_where_it_says(series, demo_scene):
    import csv

    with rasterio.open(demo_scene["labels"]) as ds:
        scene = ds.read(1)
    folder = series["folder"]
    labels = [rasterio.open(p).read(1) for p in sorted(folder.glob("labels_*.tif"))]
    assert np.array_equal(labels[0], scene)
    events = {e["event"]: e for e in csv.DictReader(series["events"].open())}
    clearing = events["forest clearing"]
    k = ["2024-04-01", "2024-04-13", "2024-04-25", "2024-05-07"].index(clearing["first date"])
    rows, cols = (tuple(int(v) for v in part.split()[-1].split("-")) for part in clearing["where"].split(", "))
    moved = labels[k] != labels[k - 1]
    assert moved.any() and not moved[:rows[0]].any() and not moved[rows[1]:].any()  # only inside its block
    assert set(labels[k - 1][moved]) == {4} and set(labels[k][moved]) == {6}  # forest -> bare ground
    with rasterio.open(folder / "S1_2024-04-13.tif") as ds:
        assert ds.tags()["TIFFTAG_DATETIME"].startswith("2024:04:13")


def test_dates_come_from_names_metadata_or_a_table_and_are_refused_when_missing_or_twice(series, tmp_path):
    import shutil

    from stars_core.change.series import read_dates

    folder = series["folder"]
    named = read_dates(sorted(folder.glob("S1_*.tif")))
    assert [d.date for d in named] == ["2024-04-01", "2024-04-13", "2024-04-25", "2024-05-07"]
    assert [d.date for d in read_dates(table=series["dates"])] == [d.date for d in named]
    unnamed = shutil.copy(folder / "S1_2024-04-13.tif", tmp_path / "scene.tif")
    assert read_dates([unnamed])[0].date == "2024-04-13"  # from TIFFTAG_DATETIME
    with rasterio.open(unnamed, "r+") as ds:
        ds.update_tags(TIFFTAG_DATETIME="")
    with pytest.raises(InputError, match="no date for .*scene.tif.*--dates"):
        read_dates([unnamed])
    with pytest.raises(InputError, match="two rasters for 2024-04-13"):
        read_dates([folder / "S1_2024-04-13.tif", tmp_path / "x_20240413.tif"])


def test_every_date_on_one_grid_with_one_model_load_and_a_rerun_skips(series, trained_model, tmp_path, monkeypatch,
                                                                      capsys):
    import stars_core.segmentation.infer as infer
    from rasterio.windows import Window

    folder = series["folder"]
    # the third date covers only the left half, on its own grid
    with rasterio.open(folder / "S1_2024-04-25.tif") as src:
        half = src.read(window=Window(0, 0, 128, 256))
        profile = dict(src.profile, width=128, transform=src.window_transform(Window(0, 0, 128, 256)))
        tags = src.tags()
    cut = tmp_path / "in" / "S1_2024-04-25.tif"
    cut.parent.mkdir()
    with rasterio.open(cut, "w", **profile) as dst:
        dst.write(half)
        dst.update_tags(**tags)
    rasters = [folder / "S1_2024-04-01.tif", folder / "S1_2024-04-13.tif", cut]
    loads = []
    original = infer.open_runner
    monkeypatch.setattr(infer, "open_runner", lambda m, c: (loads.append(m), original(m, c))[1])
    out = tmp_path / "maps"
    assert cli_main(["segment-series", str(trained_model), str(out), *map(str, rasters), "--probabilities", *SEG]) == 0
    assert len([m for m in loads if isinstance(m, (str, type(out)))]) == 1  # the model file, once
    with rasterio.open(out / "2024-04-01.tif") as first, rasterio.open(out / "2024-04-25.tif") as third:
        assert third.transform == first.transform and third.shape == first.shape
        data = third.read(1)
        assert (data[:, 140:] == third.nodata).all() and (data[:, :120] != third.nodata).mean() > 0.8
    with rasterio.open(out / "2024-04-13_probabilities.tif") as p:
        assert p.dtypes[0] == "uint8" and p.tags()["STARS_PROBABILITY_SCALE"] == "1/255"
        q = p.read().astype(int)
        ok = p.read_masks(1) > 0
        assert np.all(np.abs(q.sum(0)[ok] - 255) <= p.count)  # they still sum to 1, to the rounding
    assert not list(out.glob(".*")) and not list(out.glob("*.msk"))  # nothing left beside the outputs
    record = (out / "series.csv").read_text()
    assert record.count("\n") == 4 and "2024-04-25.tif" in record
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")}
    capsys.readouterr()
    assert cli_main(["segment-series", str(trained_model), str(out), *map(str, rasters), *SEG]) == 0
    assert "0 date(s) segmented, 3 already done" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")} == stamps


def test_series_that_cannot_be_mapped_are_refused_before_any_work(series, trained_model, demo_scene, tmp_path,
                                                                  capsys):
    from rasterio.transform import from_origin

    folder = series["folder"]
    far = tmp_path / "S1_2024-06-01.tif"
    with rasterio.open(folder / "S1_2024-04-01.tif") as src:
        profile = dict(src.profile, transform=from_origin(100_000, 1_000_000, 2, 2))
        data = src.read()
    with rasterio.open(far, "w", **profile) as dst:
        dst.write(data)
    optical = tmp_path / "S1_2024-06-13.tif"
    optical.write_bytes(open(demo_scene["optical"], "rb").read())
    for extra, message in ((far, "does not overlap"), (optical, "has 4 band(s), the model takes 2")):
        capsys.readouterr()
        assert cli_main(["segment-series", str(trained_model), str(tmp_path / "out"),
                         str(folder / "S1_2024-04-01.tif"), str(extra), *SEG]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not (tmp_path / "out").exists()


def test_viterbi_finds_the_most_probable_sequence_as_a_brute_force_search_does():
    import itertools

    from stars_core.change.temporal import FLOOR, viterbi

    rng = np.random.default_rng(3)
    T, K, P, switch = 4, 3, 40, 0.1
    probs = rng.dirichlet(np.ones(K), size=(T, P)).transpose(0, 2, 1)
    path = viterbi(probs, switch)
    log_a = np.full((K, K), np.log(switch / (K - 1)))
    np.fill_diagonal(log_a, np.log1p(-switch))
    emit = np.log(np.clip(probs, FLOOR, 1))
    for p in range(P):
        score = {s: emit[0, s[0], p] + sum(log_a[s[t - 1], s[t]] + emit[t, s[t], p] for t in range(1, T))
                 for s in itertools.product(range(K), repeat=T)}
        assert tuple(path[:, p]) == max(score, key=score.get)


def test_the_filter_drops_a_one_date_flicker_and_keeps_a_lasting_change():
    from stars_core.change.temporal import viterbi

    stable = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.9, 0.1], [0.9, 0.1]])  # date 3 leans to class 1
    lasting = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9], [0.2, 0.8]])  # class 1 from date 3 on
    probs = np.stack([stable, lasting], axis=-1)  # (T, K, P)
    path = viterbi(probs, 0.02)
    assert path[:, 0].tolist() == [0, 0, 0, 0, 0] and path[:, 1].tolist() == [0, 0, 1, 1, 1]
    assert viterbi(probs, 0.5)[:, 0].tolist() == [0, 0, 1, 0, 0]  # no prior (K = 2): each date's own argmax
    weak = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.3, 0.7]])[..., None]
    assert viterbi(weak, 0.02)[:, 0].tolist() == [0, 0, 0, 0, 0]  # evidence below the prior's cost: dropped


def test_segment_series_with_the_temporal_filter(series, trained_model, tmp_path, capsys):
    folder = series["folder"]
    out = tmp_path / "maps"
    rasters = [str(p) for p in sorted(folder.glob("S1_*.tif"))]
    assert cli_main(["segment-series", str(trained_model), str(out), *rasters, "--temporal-filter", *SEG]) == 0
    printed = capsys.readouterr().out
    assert "temporal filter (switch 0.02)" in printed and "wrote 4 *_filtered.tif" in printed

    def flicker(suffix):
        maps = [rasterio.open(out / f"{d}{suffix}.tif").read(1) for d in
                ("2024-04-01", "2024-04-13", "2024-04-25", "2024-05-07")]
        return sum(int((a != b).sum()) for a, b in zip(maps, maps[1:]))

    with rasterio.open(out / "2024-04-13_filtered.tif") as f, rasterio.open(out / "2024-04-13.tif") as m:
        assert f.tags(1)["STARS_CLASSES"] == m.tags(1)["STARS_CLASSES"] and f.colormap(1) == m.colormap(1)
    assert flicker("_filtered") < flicker("")  # fewer class changes from date to date
    assert "filtered" in (out / "series.csv").read_text().splitlines()[0]
    assert cli_main(["filter-series", str(out), "--switch", "0.2"]) == 0  # again, with another prior
    assert "temporal filter (switch 0.2)" in capsys.readouterr().out


def test_change_from_a_series_first_to_last_and_between_periods(series, trained_model, tmp_path, capsys):
    folder = series["folder"]
    out = tmp_path / "maps"
    rasters = [str(p) for p in sorted(folder.glob("S1_*.tif"))]
    assert cli_main(["segment-series", str(trained_model), str(out), *rasters, "--temporal-filter", *SEG]) == 0
    capsys.readouterr()
    assert cli_main(["change", str(tmp_path / "c.tif"), "--series", str(out)]) == 0
    assert "from 2024-04-01 filtered to 2024-05-07 filtered" in capsys.readouterr().out
    direct = tmp_path / "d.tif"
    assert cli_main(["change", str(out / "2024-04-01_filtered.tif"), str(out / "2024-05-07_filtered.tif"),
                     str(direct)]) == 0
    assert np.array_equal(rasterio.open(tmp_path / "c.tif").read(1), rasterio.open(direct).read(1))
    capsys.readouterr()
    assert cli_main(["change", str(tmp_path / "p.tif"), "--series", str(out), "--from", "2024-04-01:2024-04-13",
                     "--to", "2024-04-25:"]) == 0
    assert "2024-04-01 to 2024-04-13 (2 dates, most frequent class)" in capsys.readouterr().out
    for argv, message in ((["x.tif", "--series", str(out), "--from", "2023-01-01:2023-02-01"], "no date of the series"),
                          (["a.tif", "x.tif", "--series", str(out)], "give only OUTPUT"),
                          (["x.tif", "--series", str(tmp_path)], "is not a series folder")):
        assert cli_main(["change", *(str(tmp_path / a) if a.endswith(".tif") else a for a in argv)]) == 2
        assert message in capsys.readouterr().err


def test_the_mode_of_a_period_breaks_ties_with_the_latest_date(tmp_path):
    from rasterio.transform import from_origin

    from stars_core.change.series import _mode_composite
    from stars_core.classes import ClassTable
    from stars_core.classmap import style_class_map

    classes = ClassTable((1, 2, 3), ("a", "b", "c"), ("#ff0000", "#00ff00", "#0000ff"))
    stacks = [[1, 1, 2, 255], [2, 2, 2, 255], [2, 3, 1, 255]]  # per date, 4 pixels (255: no data)
    paths = []
    for k, row in enumerate(stacks):
        path = tmp_path / f"{k}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=4, height=1, count=1, dtype="uint8", nodata=255,
                           crs="EPSG:32633", transform=from_origin(0, 0, 1, 1)) as ds:
            ds.write(np.array([row], np.uint8), 1)
        style_class_map(path, classes)
        paths.append(path)
    _mode_composite(paths, tmp_path / "mode.tif", None)
    assert rasterio.open(tmp_path / "mode.tif").read(1)[0].tolist() == [2, 3, 2, 255]  # 1, 2, 3: a tie, the last
