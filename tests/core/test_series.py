"""A map per date of a SAR series (stars_core/change/series.py) and the generated series with known
changes (change/demo_series.py): dates read from names, metadata or a table; every map on one grid;
one model load; a rerun skips what is done; compact probabilities; the refusals."""
import threading

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


def test_the_one_pass_decoder_equals_the_full_transition_search_ties_included():
    """`decode` weighs each class's staying against the best previous score (and, where moving is
    likelier than staying, against the best and second-best: switch 0.9 of K = 4); a full K x K search over predecessors (a class keeps itself unless another is strictly better;
    among the others, ties go to the higher class index) gives the same path, on
    uint8-quantised evidence full of ties, and the uint8 table gives the float path's evidence."""
    from stars_core.change.temporal import _LOG_UINT8, FLOOR, decode

    rng = np.random.default_rng(5)
    T, K, P = 9, 4, 3000
    q = (rng.integers(0, 256, size=(T, K, P)) // 48 * 48).astype(np.uint8)  # 6 levels: many equal scores
    emit = np.log(np.clip(q.astype(np.float64) / 255.0, FLOOR, 1.0))
    for switch in (0.02, 0.4, 0.9):
        log_a = np.full((K, K), np.log(switch / (K - 1)))
        np.fill_diagonal(log_a, np.log1p(-switch))
        score, back = emit[0], []
        for t in range(1, T):
            cand = score[:, None, :] + log_a[:, :, None]  # (from, to, P)
            step = np.empty((K, P), np.int64)
            for j in range(K):  # a class keeps itself unless another is strictly better (ties: higher index)
                others, prior = cand[:, j].copy(), score.copy()
                others[j] = prior[j] = -np.inf  # the best other by its score: adding the prior may round
                # two different scores to one sum
                best_other = K - 1 - np.argmax(prior[::-1], axis=0)
                step[j] = np.where(others.max(axis=0) > cand[j, j], best_other, j)
            back.append(step)
            score = cand.max(axis=0) + emit[t]
        path = [np.argmax(score, axis=0)]
        for b in back[::-1]:
            path.append(np.take_along_axis(b, path[-1][None], 0)[0])
        np.testing.assert_array_equal(decode(emit, switch), np.stack(path[::-1]))
    floats = np.log(np.clip(np.arange(256, dtype=np.uint8).astype(np.float32) / 255.0, FLOOR, 1.0))
    assert _LOG_UINT8.dtype == np.float32 and np.array_equal(_LOG_UINT8, floats)


def test_the_filter_decodes_in_windows_on_several_threads_as_over_the_whole_raster(tmp_path, monkeypatch):
    """Windows narrower than the raster, on two threads, each with its own handles: every filtered
    pixel (no data kept) is the whole raster's Viterbi path, and every window is written in its place."""
    from rasterio.transform import from_origin

    import stars_core.change.temporal as temporal
    from stars_core import threads
    from stars_core.classes import ClassTable
    from stars_core.classmap import style_class_map

    T, K, H, W = 4, 3, 300, 600
    rng = np.random.default_rng(11)
    p = rng.dirichlet(np.full(K, 0.3), size=(T, H, W)).transpose(0, 3, 1, 2)  # (T, K, H, W)
    q = np.round(p * 255).astype(np.uint8)
    classes = ClassTable((10, 20, 30), ("a", "b", "c"), ("#ff0000", "#00ff00", "#0000ff"))
    maps = np.array(classes.values, np.uint8)[q.argmax(axis=1)]
    maps[:, 280:, 590:] = 255  # no data in the last window
    grid = dict(driver="GTiff", width=W, height=H, crs="EPSG:32633", transform=from_origin(0, 0, 10, 10), tiled=True,
                blockxsize=256, blockysize=256)
    probs, dated, outs = [], [], []
    for t in range(T):
        probs.append(tmp_path / f"p{t}.tif")
        dated.append(tmp_path / f"m{t}.tif")
        outs.append(tmp_path / f"f{t}.tif")
        with rasterio.open(probs[-1], "w", **grid, count=K, dtype="uint8") as ds:
            ds.write(q[t])
        with rasterio.open(dated[-1], "w", **grid, count=1, dtype="uint8", nodata=255) as ds:
            ds.write(maps[t], 1)
        style_class_map(dated[-1], classes)
    monkeypatch.setattr(temporal, "WINDOW_BYTES", T * K * 256 * 4 * 256)  # 256-column windows: 2 x 3 of them
    monkeypatch.setattr(threads, "current", lambda: 2)
    assert len(temporal._windows(H, W, T * K)) == 6
    readers = set()
    read = temporal._filter_window
    monkeypatch.setattr(temporal, "_filter_window", lambda *a: (readers.add(threading.get_ident()), read(*a))[1])
    counts = temporal.filter_series(probs, dated, outs, 0.1)
    assert len(readers) == 2
    valid = (maps != 255).all(axis=0)
    expected = maps.copy()
    expected[:, valid] = np.array(classes.values)[temporal.decode(temporal._LOG_UINT8[q[:, :, valid]], 0.1)]
    got = np.stack([rasterio.open(o).read(1) for o in outs])
    np.testing.assert_array_equal(got, expected)
    assert counts["pixels"] == valid.sum() * T and counts["changed"] == (got != maps).sum() > 0


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


def _strip_tag(path, key: str) -> None:
    """Remove one band metadata item (GDAL: set it to None)."""
    from osgeo import gdal

    ds = gdal.Open(str(path), gdal.GA_Update)
    ds.GetRasterBand(1).SetMetadataItem(key, None)
    ds = None


def test_a_rerun_makes_again_each_date_whose_model_raster_grid_or_options_changed(series, trained_model, tmp_path):
    """The series record says what made each map; a rerun keeps a map only when this run would make
    the same one, and says in one line per date why it makes one again."""
    import csv
    import shutil

    import torch

    from stars_core.change.series import DateInput, segment_series
    from stars_core.config import SegmentConfig
    from tests.core.helpers import rewrite

    folder = series["folder"]
    (tmp_path / "in").mkdir()
    a = shutil.copy(folder / "S1_2024-04-01.tif", tmp_path / "in")
    b = shutil.copy(folder / "S1_2024-04-13.tif", tmp_path / "in")
    model = shutil.copy(trained_model, tmp_path / "model.stars")
    dates = [DateInput("2024-04-01", a), DateInput("2024-04-13", b)]
    out = tmp_path / "maps"

    def run(given=dates, tile=128, **kw):
        lines = []
        result = segment_series(model, given, out, SegmentConfig(tile_size=tile, device="cpu", runtime="torch"),
                                log=lines.append, **kw)
        return result.done, [line for line in lines if "made again" in line]

    assert run() == (["2024-04-01", "2024-04-13"], [])
    assert run() == ([], [])  # nothing changed: both kept
    shutil.copy(folder / "S1_2024-05-07.tif", b)  # date 2's raster replaced at the same path
    done, said = run()
    assert done == ["2024-04-13"] and len(said) == 1 and "2024-04-13: made again: its raster changed" in said[0]
    moved = shutil.copy(b, tmp_path / "S1_2024-04-13.tif")  # the same content at another path
    done, said = run([dates[0], DateInput("2024-04-13", moved)])
    assert done == ["2024-04-13"] and "made from another raster" in said[0]
    _strip_tag(out / "2024-04-01.tif", "STARS_CLASSES")  # a map without its class table is not kept
    done, said = run([dates[0], DateInput("2024-04-13", moved)])
    assert done == ["2024-04-01"] and "has no class table" in said[0]
    payload = torch.load(model, weights_only=True)  # the model retrained at the same path
    key = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][key] = payload["state_dict"][key] + 0.01
    torch.save(payload, model)
    done, said = run([dates[0], DateInput("2024-04-13", moved)])
    assert len(done) == 2 and all("another model" in line for line in said)
    done, said = run([dates[0], DateInput("2024-04-13", moved)], tile=64)
    assert len(done) == 2 and "other options (tile 128 -> 64)" in said[0]
    done, said = run([dates[0], DateInput("2024-04-13", moved)], tile=64, probabilities=True)
    assert len(done) == 2 and "probabilities asked for" in said[0] and (out / "2024-04-01_probabilities.tif").is_file()
    grid = rewrite(folder / "S1_2024-04-01.tif", tmp_path / "grid.tif", data=np.zeros((2, 128, 128), np.float32),
                   width=128, height=128)
    done, said = run([dates[0], DateInput("2024-04-13", moved)], tile=64, probabilities=True, grid=grid)
    assert len(done) == 2 and "another grid" in said[0]
    with rasterio.open(out / "2024-04-01.tif") as ds:
        assert ds.shape == (128, 128)
    rows = list(csv.DictReader((out / "series.csv").open()))  # a record of an earlier version: no provenance
    with (out / "series.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["date", "source", "map", "probabilities", "seconds", "filtered"],
                           extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    done, said = run([dates[0], DateInput("2024-04-13", moved)], tile=64, probabilities=True, grid=grid)
    assert len(done) == 2 and "does not say what made it" in said[0]


def test_a_map_of_an_earlier_int8_recipe_is_made_again(series, int8_model, tmp_path):
    """Where the int8 export runs, its recipe (7-bit weights) is part of what made a map: a date mapped
    by an earlier recipe (8-bit weights, recorded without it) is mapped again, not kept beside new ones."""
    import csv

    from stars_core.change.series import RECORD, DateInput, segment_series
    from stars_core.config import SegmentConfig
    from stars_core.engines.auto import INT8_WEIGHTS

    if int8_model["map"] is None:
        pytest.skip("needs ONNX Runtime (the int8 export)")
    dates = [DateInput(d, series["folder"] / f"S1_{d}.tif") for d in ("2024-04-01", "2024-04-13")]
    out = tmp_path / "maps"

    def run():
        lines = []
        cfg = SegmentConfig(tile_size=128, device="cpu", runtime="int8")  # the export cached beside the model
        done = segment_series(int8_model["model"], dates, out, cfg, log=lines.append).done
        return done, [line for line in lines if "made again" in line]

    assert run() == (["2024-04-01", "2024-04-13"], [])
    rows = list(csv.DictReader((out / RECORD).open()))
    assert all(r["options"].endswith(f" int8={INT8_WEIGHTS}") for r in rows)
    assert run() == ([], [])
    for r in rows:  # as an earlier version recorded them
        r["options"] = r["options"].replace(f" int8={INT8_WEIGHTS}", "")
    with (out / RECORD).open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    done, said = run()
    assert done == ["2024-04-01", "2024-04-13"] and f"other options (int8 ? -> {INT8_WEIGHTS})" in said[0]


def test_two_runs_writing_one_series_record_at_once_keep_every_row(tmp_path):
    import datetime as dt
    import threading

    from stars_core.change.series import RECORD, _read_record, update_record

    path = tmp_path / RECORD
    start = threading.Barrier(2)
    errors = []

    def writer(year: int) -> None:
        start.wait()
        try:
            for day in range(40):
                date = (dt.date(year, 1, 1) + dt.timedelta(days=day)).isoformat()
                update_record(path, {date: {"date": date, "source": f"/x/{date}.tif", "map": f"{date}.tif"}},
                              replace=True)
        except Exception as exc:  # noqa: BLE001 (the test reports it)
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(year,)) for year in (2024, 2025)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(_read_record(path)) == 80


def test_segment_series_says_what_segment_warns_once_and_names_bands_it_takes_as_others(series, trained_model,
                                                                                      tmp_path, capsys):
    from tests.core.helpers import reproject_raster, rewrite

    folder = series["folder"]
    rasters = [str(folder / "S1_2024-04-01.tif"), str(folder / "S1_2024-04-13.tif")]
    coarse = reproject_raster(folder / "S1_2024-04-01.tif", tmp_path / "grid4m.tif", "EPSG:32633", 4.0)
    capsys.readouterr()
    assert cli_main(["segment-series", str(trained_model), str(tmp_path / "a"), *rasters, "--grid", str(coarse),
                     *SEG]) == 0
    printed = capsys.readouterr()
    said = [line for line in (printed.out + printed.err).splitlines() if "trained on 2 m pixels" in line]
    assert len(said) == 1 and "pixels are 4 m" in said[0] and said[0].startswith("2024-04-01: "), said
    hh = rewrite(folder / "S1_2024-04-01.tif", tmp_path / "HH_2024-04-01.tif")
    swapped = tmp_path / "S1_2024-04-13.tif"
    with rasterio.open(folder / "S1_2024-04-13.tif") as src:
        profile, data, tags = src.profile, src.read(), src.tags()
    with rasterio.open(swapped, "w", **profile) as dst:
        dst.write(data[::-1])
        dst.descriptions = ("VH", "VV")
        dst.update_tags(**tags)
    with rasterio.open(hh, "r+") as ds:
        ds.descriptions = ("HH", "HV")
    assert cli_main(["segment-series", str(trained_model), str(tmp_path / "b"), str(hh), str(swapped), *SEG]) == 0
    printed = capsys.readouterr()
    text = printed.out + printed.err
    assert "2024-04-01: SAR bands are named HH, HV, the model was trained on VV, VH: they are used in their " \
           "order as VV, VH" in text, text
    assert "2024-04-13: SAR bands are named VH, VV; reordering them" in text
    assert cli_main(["segment", str(trained_model), str(hh), str(tmp_path / "hh.tif"), *SEG]) == 0
    printed = capsys.readouterr()
    assert "bands are named HH, HV" in printed.out + printed.err


def test_series_refusals_come_before_the_first_pixel(series, trained_model, tmp_path, capsys):
    import shutil

    folder = series["folder"]
    one, two = str(folder / "S1_2024-04-01.tif"), str(folder / "S1_2024-04-13.tif")
    out = tmp_path / "out"
    cut = tmp_path / "S1_2024-04-25.tif"  # a copy stopped half-way
    cut.write_bytes((folder / "S1_2024-04-25.tif").read_bytes()[:150_000])
    cases = ((["--temporal-filter", one], "the temporal filter needs 2 or more dates"),
             (["--temporal-filter", "--switch", "0", one, two], "between 0 and 1"),
             ([one, str(cut)], ("cut short or damaged", "is not a raster GDAL can read")))  # GDAL 3.6 / 3.10
    for argv, message in cases:
        capsys.readouterr()
        assert cli_main(["segment-series", str(trained_model), str(out), *argv, *SEG]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        said = (message,) if isinstance(message, str) else message
        assert len(err) == 1 and any(m in err[0] for m in said), err
        assert not out.exists()
    out.mkdir()  # the output folder holds date 2's raster under the name of date 2's map
    inside = shutil.copy(two, out / "2024-04-13.tif")
    assert cli_main(["segment-series", str(trained_model), str(out), one, str(inside), *SEG]) == 2
    assert "map of 2024-04-13" in capsys.readouterr().err and sorted(p.name for p in out.iterdir()) == ["2024-04-13.tif"]
    (out / "2024-04-13.tif").unlink()
    (out / "series.csv").write_bytes(b"\xff\xfe\x00date,source\n")
    assert cli_main(["segment-series", str(trained_model), str(out), one, *SEG]) == 2
    err = capsys.readouterr().err
    assert "series record" in err and "series.csv" in err and "damaged" in err


def test_rasters_may_come_after_the_dates_table(series, trained_model, tmp_path, capsys):
    table = tmp_path / "dates.csv"
    table.write_text(f"date,path\n2024-04-01,{series['folder'] / 'S1_2024-04-01.tif'}\n")
    assert cli_main(["segment-series", str(trained_model), str(tmp_path / "out"), "--dates", str(table),
                     str(series["folder"] / "S1_2024-04-13.tif"), *SEG]) == 0
    assert "2 date(s) segmented" in capsys.readouterr().out


def test_filter_series_checks_its_inputs_and_outputs_first(series, trained_model, tmp_path, capsys):
    import os

    folder = series["folder"]
    out = tmp_path / "maps"
    rasters = [str(folder / "S1_2024-04-01.tif"), str(folder / "S1_2024-04-13.tif")]
    assert cli_main(["segment-series", str(trained_model), str(out), *rasters, "--probabilities", *SEG]) == 0
    probs = out / "2024-04-13_probabilities.tif"
    probs.write_bytes(probs.read_bytes()[: probs.stat().st_size // 2])
    capsys.readouterr()
    assert cli_main(["filter-series", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2024-04-13_probabilities.tif" in err[0] and "Traceback" not in err[0], err
    assert not list(out.glob("*_filtered.*")) and not list(out.glob(".*"))
    assert cli_main(["filter-series", str(out), "--switch", "1"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        assert cli_main(["segment-series", str(trained_model), str(out), *rasters, "--probabilities",
                         "--no-skip-existing", *SEG]) == 0
        out.chmod(0o555)
        try:
            assert cli_main(["filter-series", str(out)]) == 2
            assert "cannot be written" in capsys.readouterr().err
        finally:
            out.chmod(0o755)


def test_filtered_maps_hold_class_values_equal_to_the_maps_where_the_dates_agree_and_have_a_style(
        series, trained_model, tmp_path):
    from stars_core.classmap import stored_classes

    out = tmp_path / "maps"
    rasters = [str(p) for p in sorted(series["folder"].glob("S1_*.tif"))]
    assert cli_main(["segment-series", str(trained_model), str(out), *rasters, "--temporal-filter", *SEG]) == 0
    dates = ("2024-04-01", "2024-04-13", "2024-04-25", "2024-05-07")
    maps = np.stack([rasterio.open(out / f"{d}.tif").read(1) for d in dates])
    filtered = np.stack([rasterio.open(out / f"{d}_filtered.tif").read(1) for d in dates])
    with rasterio.open(out / f"{dates[0]}.tif") as ds:
        values, nodata = stored_classes(ds).values, ds.nodata
    assert set(np.unique(filtered)) <= {*values, nodata}
    probs = np.stack([rasterio.open(out / f"{d}_probabilities.tif").read().astype(int) for d in dates])  # (T, K, h, w)
    top = np.sort(probs, axis=1)
    clear = (top[:, -1] > top[:, -2]).all(axis=0)  # no rounding tie between the two most likely classes
    agree = (maps == maps[0]).all(axis=0) & (maps[0] != nodata) & clear
    assert agree.sum() > 1000 and np.array_equal(filtered[:, agree], maps[:, agree])
    for d in dates:
        qml = (out / f"{d}_filtered.qml").read_text()
        assert qml == (out / f"{d}.qml").read_text() and "paletted" in qml


def test_a_full_disk_is_said_in_one_line_and_leaves_nothing(series, trained_model, tmp_path, monkeypatch, capsys):
    """GDAL leaves a file it could not write whole, which rasterio then cannot reopen (a TypeError on
    a real full disk): simulated here by cutting the class map short as GDAL finishes it."""
    import shutil

    import stars_core.segmentation.infer as infer

    finish = infer._finish

    def disk_fills(paths, classes, overviews=True):
        paths[0].write_bytes(paths[0].read_bytes()[:200])
        return finish(paths, classes, overviews)

    monkeypatch.setattr(infer, "_finish", disk_fills)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 0))
    out = tmp_path / "maps"
    assert cli_main(["segment-series", str(trained_model), str(out), str(series["folder"] / "S1_2024-04-01.tif"),
                     *SEG]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("date 1/1")]
    assert len(err) == 1 and f"the disk holding {str(out)!r} is full" in err[0] and "'2024-04-01.tif'" in err[0], err
    assert [p.name for p in out.iterdir()] in ([], ["series.csv.lock"])


def test_a_model_file_on_a_full_disk_is_said_in_one_line(trained_model, tmp_path, monkeypatch):
    import shutil

    import torch

    from stars_core import checkpoint
    from stars_core.errors import OutputError

    def full(*_a, **_k):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 6720 vs 6608")

    loaded = checkpoint.load_model(trained_model)
    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 0))
    with pytest.raises(OutputError, match=r"the disk holding .* is full .* 'copy.stars' could not be written"):
        checkpoint.save_model_file(tmp_path / "copy.stars", loaded.meta, loaded.model.state_dict(), {}, [])
    assert not list(tmp_path.iterdir())


def test_the_maps_of_a_change_between_periods_are_kept_so_assess_finds_both_dates(series, trained_model, tmp_path,
                                                                                  capsys):
    import json

    from osgeo import ogr

    from stars_core.accuracy.assess import assess
    from stars_core.accuracy.sample import draw_sample
    from stars_core.classmap import CHANGE_TAG

    out = tmp_path / "maps"
    rasters = [str(p) for p in sorted(series["folder"].glob("S1_*.tif"))]
    assert cli_main(["segment-series", str(trained_model), str(out), *rasters, *SEG]) == 0
    change = tmp_path / "c.tif"
    assert cli_main(["change", str(change), "--series", str(out), "--from", "2024-04-01:2024-04-13",
                     "--to", "2024-04-25:"]) == 0
    assert "wrote " + str(tmp_path / "c_to.tif") in capsys.readouterr().out
    with rasterio.open(change) as ds:
        made_from = json.loads(ds.tags()[CHANGE_TAG])
    assert made_from["map_a"] == str(tmp_path / "c_from.tif") and made_from["map_b"] == str(tmp_path / "c_to.tif")
    for kept in ("c_from", "c_to"):
        assert (tmp_path / f"{kept}.tif").is_file() and (tmp_path / f"{kept}.qml").is_file()
    draw_sample(change, tmp_path / "s.gpkg", n=40, minimum=3, log=lambda m: None)
    ds = ogr.Open(str(tmp_path / "s.gpkg"), 1)
    layer = ds.GetLayerByName("sample")
    with rasterio.open(tmp_path / "c_from.tif") as ma, rasterio.open(tmp_path / "c_to.tif") as mb:
        a, b = ma.read(1), mb.read(1)
        for f in layer:
            row, col = ma.index(f.GetGeometryRef().GetX(), f.GetGeometryRef().GetY())
            f.SetField("reference_from", int(a[row, col]))
            f.SetField("reference_to", int(b[row, col]))
            layer.SetFeature(f)
    layer = ds = None
    result = assess(change, tmp_path / "s.gpkg")
    assert set(result.dates) == {"first", "second"}, result.notes


def test_a_cancel_while_writing_change_polygons_leaves_no_map(series, trained_model, tmp_path):
    from stars_core.change import change_map
    from stars_core.errors import Cancelled

    out = tmp_path / "maps"
    rasters = [str(series["folder"] / f"S1_{d}.tif") for d in ("2024-04-01", "2024-05-07")]
    assert cli_main(["segment-series", str(trained_model), str(out), *rasters, *SEG]) == 0
    target = tmp_path / "c.tif"
    with pytest.raises(Cancelled, match="no output was written"):  # cancelled once the map is in place
        change_map(out / "2024-04-01.tif", out / "2024-05-07.tif", target, polygons=tmp_path / "c.gpkg",
                   matrix_csv=tmp_path / "m.csv", cancel=target.exists, log=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps"]
