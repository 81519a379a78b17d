"""Sliding-window segmentation: georeferencing, no-data, odd sizes, seamless blending, cancel,
clear errors, the other branches, the pixel-size check and the command line."""
import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from stars_core.checkpoint import load_model
from stars_core.classes import ClassTable
from stars_core.cli import main as cli_main
from stars_core.config import SegmentConfig
from stars_core.segmentation.infer import segment
from stars_core.errors import Cancelled
from stars_core.raster import valid_mask
from tests.core.helpers import rewrite

CPU = dict(device="cpu")


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.profile


def _sar_valid(path):
    with rasterio.open(path) as ds:
        return valid_mask(ds, ds.read())


def test_output_has_the_input_grid_classes_legend_and_overviews(demo_scene, trained_model, tmp_path):
    out = tmp_path / "map.tif"
    res = segment(trained_model, demo_scene["sar"], out, SegmentConfig(tile_size=96, overlap=32, **CPU))
    classes = ClassTable.from_file(demo_scene["classes"])
    with rasterio.open(out) as ds, rasterio.open(demo_scene["sar"]) as src:
        assert ds.crs == src.crs and ds.transform == src.transform
        assert (ds.width, ds.height) == (src.width, src.height)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255 and ds.count == 1
        assert ds.block_shapes[0] == (256, 256) and ds.compression.value == "DEFLATE"  # tiled (rasterio 1.3 and 1.4)
        assert ds.overviews(1), "overviews missing"
        data = ds.read(1)
        assert set(np.unique(data)) <= set(classes.values) | {255}
        cmap = ds.colormap(1)
        assert all(cmap[v][:3] == tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))
                   for v, c in zip(classes.values, classes.colors))
    from osgeo import gdal

    names = gdal.Info(str(out), format="json")["bands"][0]["categories"]  # as GDAL tools see them
    assert [names[v] for v in classes.values] == list(classes.names)
    qml = (tmp_path / "map.qml").read_text()
    assert qml.count("<paletteEntry") == len(classes) and 'label="bare ground"' in qml
    assert sum(res.class_pixels.values()) + res.nodata_pixels == data.size
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_input_nodata_is_output_nodata(demo_scene, trained_model, tmp_path):
    segment(trained_model, demo_scene["sar"], tmp_path / "map.tif", SegmentConfig(tile_size=128, overlap=32, **CPU))
    data, _ = _read(tmp_path / "map.tif")
    valid = _sar_valid(demo_scene["sar"])
    assert (~valid).sum() > 100, "the demo SAR should hold a no-data corner"
    np.testing.assert_array_equal(data == 255, ~valid)


@pytest.mark.parametrize("shape", [(37, 50), (141, 203)], ids=["smaller-than-a-tile", "odd-size"])
def test_rasters_smaller_than_a_tile_or_of_odd_size(demo_scene, trained_model, tmp_path, shape):
    h, w = shape
    with rasterio.open(demo_scene["sar"]) as ds:
        data = ds.read(window=((60, 60 + h), (40, 40 + w)))
        transform = ds.window_transform(((60, 60 + h), (40, 40 + w)))
    small = rewrite(demo_scene["sar"], tmp_path / "small.tif", data=data, width=w, height=h, transform=transform)
    segment(trained_model, small, tmp_path / "map.tif", SegmentConfig(tile_size=96, overlap=32, **CPU))
    out, profile = _read(tmp_path / "map.tif")
    assert out.shape == (h, w) and profile["transform"] == transform
    np.testing.assert_array_equal(out == 255, ~_sar_valid(small))


class _Pointwise(torch.nn.Module):
    """A per-pixel stand-in for the network: any difference between tiled and whole-raster output
    can then only come from the tiling, padding, blending and writing machinery."""

    def __init__(self, bands: int, classes: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(bands, classes, 1)
        torch.nn.init.normal_(self.conv.weight, std=3.0)

    def forward(self, x1=None, x2=None):
        return self.conv(x1)


def test_tiling_machinery_is_exact_for_a_per_pixel_model(demo_scene, trained_model, tmp_path):
    loaded = load_model(trained_model)
    loaded.model = _Pointwise(2, len(loaded.classes)).eval()
    cfg = dict(device="cpu")
    segment(loaded, demo_scene["sar"], tmp_path / "whole.tif", SegmentConfig(tile_size=256, overlap=0, **cfg),
            confidence=tmp_path / "whole_conf.tif")
    segment(loaded, demo_scene["sar"], tmp_path / "tiled.tif", SegmentConfig(tile_size=96, overlap=40, batch_size=3, **cfg),
            confidence=tmp_path / "tiled_conf.tif")
    np.testing.assert_array_equal(_read(tmp_path / "whole.tif")[0], _read(tmp_path / "tiled.tif")[0])
    np.testing.assert_allclose(_read(tmp_path / "whole_conf.tif")[0], _read(tmp_path / "tiled_conf.tif")[0], atol=1e-5)


def test_batch_size_follows_the_device_and_does_not_change_the_map(demo_scene, trained_model, tmp_path):
    assert SegmentConfig().batch_for("cpu") == 1
    assert SegmentConfig().batch_for("cuda") == 4
    assert SegmentConfig(batch_size=3).batch_for("cpu") == 3
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        SegmentConfig(batch_size=0)
    loaded = load_model(trained_model)
    segment(loaded, demo_scene["sar"], tmp_path / "auto.tif", SegmentConfig(tile_size=128, overlap=32, **CPU))
    segment(loaded, demo_scene["sar"], tmp_path / "b5.tif", SegmentConfig(tile_size=128, overlap=32, batch_size=5, **CPU))
    assert (_read(tmp_path / "auto.tif")[0] == _read(tmp_path / "b5.tif")[0]).mean() >= 0.999


def test_tiled_prediction_agrees_with_one_window_and_shows_no_seams(trained_model, tmp_path):
    from stars_core.demo_scene import make_demo_scene
    from stars_core.tiling import TileGrid

    scene = make_demo_scene(tmp_path / "scene", size=416, seed=5)  # a fresh area of the same kind
    h = w = 416
    segment(trained_model, scene["sar"], tmp_path / "whole.tif", SegmentConfig(tile_size=416, overlap=0, **CPU))
    cfg = SegmentConfig(tile_size=256, overlap=128, batch_size=3, **CPU)
    segment(trained_model, scene["sar"], tmp_path / "tiled.tif", cfg)
    whole, _ = _read(tmp_path / "whole.tif")
    tiled, _ = _read(tmp_path / "tiled.tif")
    assert len(np.unique(whole)) > 2  # a real map, not one class
    differ = whole != tiled
    assert differ.mean() <= 0.01, f"{differ.mean():.2%} of pixels differ"
    # where a seam would show: within 4 px of an inner tile edge
    grid = TileGrid.build(h, w, cfg.tile_size, cfg.overlap)
    edge = np.zeros_like(differ)
    for r in grid.rows[1:]:
        edge[r - 4:r + 4] = True
    for r in grid.rows[:-1]:
        edge[r + 256 - 4:r + 256 + 4] = True
    for c in grid.cols[1:]:
        edge[:, c - 4:c + 4] = True
    for c in grid.cols[:-1]:
        edge[:, c + 256 - 4:c + 256 + 4] = True
    assert edge.mean() > 0.05
    assert differ[edge].mean() <= max(2 * differ.mean(), 0.002), "disagreement concentrates on tile borders"


def test_cancel_leaves_no_output_and_keeps_an_older_one(demo_scene, trained_model, tmp_path):
    out = tmp_path / "map.tif"
    out.write_bytes(b"previous result")
    calls = []
    with pytest.raises(Cancelled):
        segment(trained_model, demo_scene["sar"], out, SegmentConfig(tile_size=64, overlap=16, batch_size=2, **CPU),
                confidence=tmp_path / "conf.tif", cancel=lambda: len(calls) > 1,
                progress=lambda d, n: calls.append(d))
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif"]


def test_band_count_mismatch_is_a_clear_error(demo_scene, trained_model, tmp_path):
    with pytest.raises(ValueError, match=r"has 4 band\(s\) but the model was trained on 2 \(VV, VH\)"):
        segment(trained_model, demo_scene["optical"], tmp_path / "map.tif", SegmentConfig(**CPU))
    assert not list(tmp_path.iterdir())


@pytest.mark.usefixtures("steady_threads")  # two runs compared bit for bit
def test_band_names_in_another_order_are_reordered(demo_scene, trained_model, tmp_path):
    with rasterio.open(demo_scene["sar"]) as ds:
        swapped = ds.read()[::-1]
    sar = rewrite(demo_scene["sar"], tmp_path / "vhvv.tif", data=swapped)
    with rasterio.open(sar, "r+") as ds:
        ds.descriptions = ("VH", "VV")
    notes = []
    segment(trained_model, sar, tmp_path / "a.tif", SegmentConfig(tile_size=128, **CPU), log=notes.append)
    segment(trained_model, demo_scene["sar"], tmp_path / "b.tif", SegmentConfig(tile_size=128, **CPU))
    assert any("reordering" in n for n in notes)
    np.testing.assert_array_equal(_read(tmp_path / "a.tif")[0], _read(tmp_path / "b.tif")[0])


def test_fused_and_optical_only_branches(demo_scene, trained_model, tmp_path):
    cfg = SegmentConfig(tile_size=128, overlap=32, **CPU)
    fused = segment(trained_model, demo_scene["sar"], tmp_path / "fused.tif", cfg, with_m2=demo_scene["optical"])
    opt = segment(trained_model, demo_scene["optical"], tmp_path / "opt.tif", SegmentConfig(tile_size=128, modality=2, **CPU))
    sar = segment(trained_model, demo_scene["sar"], tmp_path / "sar.tif", cfg)
    assert (fused.branch, opt.branch, sar.branch) == ("fused", "m2", "m1")
    a, b, c = (_read(tmp_path / f"{n}.tif")[0] for n in ("fused", "opt", "sar"))
    assert a.shape == b.shape == c.shape
    assert (a != c).any() and (b != c).any(), "the branches should not all give the same map"
    # the fused map has a class wherever SAR has data (optical gaps fall back to the SAR branch)
    np.testing.assert_array_equal(a == 255, ~_sar_valid(demo_scene["sar"]))


def test_probabilities_and_confidence_match_the_class_map(demo_scene, trained_model, tmp_path):
    segment(trained_model, demo_scene["sar"], tmp_path / "map.tif", SegmentConfig(tile_size=96, overlap=32, **CPU),
            confidence=tmp_path / "conf.tif", probabilities=tmp_path / "prob.tif")
    classes = np.asarray(ClassTable.from_file(demo_scene["classes"]).values)
    cls, _ = _read(tmp_path / "map.tif")
    conf, _ = _read(tmp_path / "conf.tif")
    with rasterio.open(tmp_path / "prob.tif") as ds:
        prob = ds.read()
        assert ds.descriptions[0] == "buildings"
    ok = cls != 255
    np.testing.assert_allclose(prob[:, ok].sum(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(classes[prob[:, ok].argmax(axis=0)], cls[ok])
    np.testing.assert_allclose(prob[:, ok].max(axis=0), conf[ok], atol=1e-6)
    assert np.isnan(conf[~ok]).all()
    with rasterio.open(tmp_path / "prob.tif") as ds:
        assert ds.overviews(1)  # for display in QGIS
    segment(trained_model, demo_scene["sar"], tmp_path / "map2.tif", SegmentConfig(tile_size=96, overlap=32, **CPU),
            probabilities=tmp_path / "step.tif", overviews=False)  # an intermediate step: none
    with rasterio.open(tmp_path / "step.tif") as ds, rasterio.open(tmp_path / "map2.tif") as classes_ds:
        assert not ds.overviews(1) and classes_ds.overviews(1)
        np.testing.assert_array_equal(ds.read(), prob)


def test_pixel_size_far_from_training_warns_and_resample_returns_to_the_input_grid(demo_scene, trained_model, tmp_path):
    with rasterio.open(demo_scene["sar"]) as ds:  # 6 m pixels for a model trained on 2 m: 96 px are read as 288
        coarse, corner = ds.transform * Affine.scale(3), ds.read(window=((0, 96), (0, 96)))  # the swath edge's corner
    sar = rewrite(demo_scene["sar"], tmp_path / "coarse.tif", data=corner, width=96, height=96, transform=coarse)
    plain = segment(trained_model, sar, tmp_path / "a.tif", SegmentConfig(tile_size=128, **CPU))
    assert any("trained on 2 m" in w and "--resample" in w for w in plain.warnings)
    res = segment(trained_model, sar, tmp_path / "b.tif", SegmentConfig(tile_size=128, resample=True, **CPU),
                  confidence=tmp_path / "b_conf.tif")
    assert any("resampling" in w for w in res.warnings)
    b, profile = _read(tmp_path / "b.tif")
    assert profile["transform"] == coarse and b.shape == (96, 96)
    assert (b == 255).any() and (b != 255).any()
    np.testing.assert_array_equal(b == 255, ~_sar_valid(sar))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_single_model_refuses_the_optical_raster(demo_scene, tmp_path):
    from stars_core.training.data import SceneSpec
    from stars_core.training.train import train
    from tests.core.helpers import TINY_MODEL, tiny_train
    import dataclasses

    spec = SceneSpec(str(demo_scene["sar"]), str(demo_scene["optical"]), str(demo_scene["labels"]))
    model = train([spec], tmp_path / "single.stars", dataclasses.replace(TINY_MODEL, mode="single"),
                  **tiny_train(steps=1, class_table=str(demo_scene["classes"])), log=lambda *_: None).path
    with pytest.raises(ValueError, match="trained on SAR alone"):
        segment(model, demo_scene["sar"], tmp_path / "m.tif", SegmentConfig(**CPU), with_m2=demo_scene["optical"])


def test_the_loaded_model_can_be_reused(demo_scene, trained_model, tmp_path):
    loaded = load_model(trained_model)
    r1 = segment(loaded, demo_scene["sar"], tmp_path / "a.tif", SegmentConfig(tile_size=128, **CPU))
    r2 = segment(trained_model, demo_scene["sar"], tmp_path / "b.tif", SegmentConfig(tile_size=128, **CPU))
    assert r1.class_pixels == r2.class_pixels


@pytest.mark.usefixtures("steady_threads")  # two runs compared bit for bit
def test_one_cached_model_segments_sar_and_optical_in_two_threads_as_one_after_the_other(demo_scene, trained_model,
                                                                                        tmp_path):
    """QGIS runs Processing algorithms in background threads and shares a cached model between them:
    a SAR-only and an optical-only segmentation at once must each keep their BatchNorm statistics."""
    import threading

    from stars_core.segmentation.infer import open_runner_cached

    sar_cfg = SegmentConfig(tile_size=64, overlap=16, **CPU)
    opt_cfg = SegmentConfig(tile_size=64, overlap=16, modality=2, **CPU)
    runner = open_runner_cached(trained_model, sar_cfg)
    jobs = {"sar": (demo_scene["sar"], sar_cfg), "opt": (demo_scene["optical"], opt_cfg)}
    for name, (raster, cfg) in jobs.items():  # one after the other
        segment(runner, raster, tmp_path / f"{name}_alone.tif", cfg)
    errors = []

    def run(name):
        try:
            for i in range(2):
                segment(runner, jobs[name][0], tmp_path / f"{name}_{i}.tif", jobs[name][1])
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(n,)) for n in jobs]
    for w in workers:
        w.start()
    for w in workers:
        w.join(300)
    assert not errors, errors
    for name in jobs:
        for i in range(2):
            np.testing.assert_array_equal(_read(tmp_path / f"{name}_{i}.tif")[0], _read(tmp_path / f"{name}_alone.tif")[0])


def test_cli_segment_and_evaluate(demo_scene, int8_model, tmp_path, capsys):
    trained_model = int8_model["model"]  # the default path runs its int8 export, made once for the session
    out = tmp_path / "map.tif"
    rc = cli_main(["segment", str(trained_model), str(demo_scene["sar"]), str(out), "--tile-size", "128",
                   "--device", "cpu", "--confidence", str(tmp_path / "conf.tif")])
    assert rc == 0 and out.exists() and (tmp_path / "conf.tif").exists()
    assert "wrote" in capsys.readouterr().out
    rc = cli_main(["evaluate", str(out), str(demo_scene["labels"]), "--ignore-value", "0",
                   "--json", str(tmp_path / "m.json"), "--markdown", str(tmp_path / "m.md"),
                   "--png", str(tmp_path / "cm.png"), "--html", str(tmp_path / "m.html")])
    assert rc == 0
    import json

    report = json.loads((tmp_path / "m.json").read_text())
    assert 0 <= report["miou"] <= 1 and len(report["per_class"]) == 6
    assert "| mIoU | mF1 | overall accuracy |" in (tmp_path / "m.md").read_text()
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc = cli_main(["segment", str(trained_model), str(demo_scene["optical"]), str(tmp_path / "x.tif")])
    assert rc == 2 and "trained on 2 (VV, VH)" in capsys.readouterr().err


@pytest.mark.usefixtures("steady_threads")  # two runs compared bit for bit
def test_device_side_blending_gives_the_numpy_map(trained_model, demo_scene, tmp_path):
    """The blending CUDA uses (torch buffers on the model's device) checked on the CPU."""
    cfg = dict(tile_size=96, overlap=40, batch_size=3, **CPU)
    a = segment(trained_model, demo_scene["sar"], tmp_path / "numpy.tif", SegmentConfig(blend_on_device=False, **cfg),
                confidence=tmp_path / "c1.tif")
    b = segment(trained_model, demo_scene["sar"], tmp_path / "torch.tif", SegmentConfig(blend_on_device=True, **cfg),
                confidence=tmp_path / "c2.tif")
    with rasterio.open(a.path) as x, rasterio.open(b.path) as y:
        np.testing.assert_array_equal(x.read(), y.read())
    with rasterio.open(tmp_path / "c1.tif") as x, rasterio.open(tmp_path / "c2.tif") as y:
        np.testing.assert_allclose(x.read(), y.read(), atol=1e-5)


@pytest.mark.usefixtures("steady_threads")  # two runs compared bit for bit
def test_reader_threads_each_open_their_own_handles_and_give_the_same_map(demo_scene, trained_model, tmp_path,
                                                                          monkeypatch):
    """Several reader threads (the CUDA default) read with handles of their own, since GDAL handles
    must not be shared between threads, and the maps equal those of one reader."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import stars_core.segmentation.infer as infer
    from stars_core.tiling import TileGrid

    assert SegmentConfig().readers_for("cpu", 8) == 1
    assert SegmentConfig().readers_for("cuda", 8) == 4 and SegmentConfig().readers_for("cuda", 2) == 2
    assert SegmentConfig(read_threads=3, batch_size=3).readers_for("cpu", 2) == 3
    assert SegmentConfig(read_threads=3).readers_for("cpu", 2) == 1  # one tile per batch on the CPU: one reader
    with pytest.raises(ValueError, match="read threads must be at least 1"):
        SegmentConfig(read_threads=0)

    opened = []  # (thread, dataset) of every reopen
    two_at_once = threading.Barrier(2, timeout=30)
    calls = iter(range(10**6))

    def reopen(stack):
        ds = stack.enter_context(rasterio.open(demo_scene["sar"]))
        opened.append((threading.get_ident(), ds))
        return ds, None

    def prepare(x, valid, stats):
        if next(calls) < 2:  # the first two tiles wait for each other: two threads read at once
            two_at_once.wait()
        return x.astype(np.float32)

    with rasterio.open(demo_scene["sar"]) as given:
        inputs = infer._Inputs(given, None, (list(range(1, given.count + 1)), None), (None, None),
                               prepare=prepare, reopen=reopen)
        tiles = list(TileGrid.build(given.height, given.width, 64, 16))
        with ThreadPoolExecutor(3) as pool:
            reads = list(pool.map(inputs.read, tiles))
            used = [t for t, _ in opened]
            assert len(used) == len(set(used)) >= 2, "one handle per reader thread, more than one thread used"
            assert all(ds is not given for _, ds in opened)
            closers = []
            close_own = inputs.handles.close_own
            inputs.handles.close_own = lambda: (closers.append(threading.get_ident()), close_own())
            inputs.close_in(pool, 3)  # each reader closes its own (rasterio 1.4 ties a dataset to its thread)
            inputs.handles.close_own = close_own
        assert set(used) <= set(closers) and len(set(closers)) == 3
        assert all(ds.closed for _, ds in opened) and not given.closed
        again = [inputs.read(t) for t in tiles]  # after close, this thread opens new handles
        np.testing.assert_array_equal(np.stack([r[0] for r in reads]), np.stack([r[0] for r in again]))
        inputs.close_own()

    # in segment(): the input, the optical raster and the resampling VRT are opened again by the readers
    openers = []

    def recording(wrapped):
        def opener(*args, **kwargs):
            openers.append((threading.current_thread() is threading.main_thread(), wrapped.__name__))
            return wrapped(*args, **kwargs)
        opener.__name__ = wrapped.__name__
        return opener

    monkeypatch.setattr(infer, "open_raster", recording(infer.open_raster))
    monkeypatch.setattr(infer, "WarpedVRT", recording(infer.WarpedVRT))
    loaded = load_model(trained_model)
    with rasterio.open(demo_scene["sar"]) as ds:
        coarse, corner = ds.transform * Affine.scale(3), ds.read(window=((0, 96), (0, 96)))
    coarse = rewrite(demo_scene["sar"], tmp_path / "coarse.tif", data=corner, width=96, height=96, transform=coarse)
    runs = {  # name: raster, segment() arguments, config, {opener: (opens in the main thread, in each reader)}
        "sar": (demo_scene["sar"], {}, {}, {"open_raster": (1, 1)}),
        "fused": (demo_scene["sar"], {"with_m2": demo_scene["optical"]}, {}, {"open_raster": (2, 2)}),
        "resampled": (coarse, {}, {"resample": True},  # 96 px of 3x the pixel size: read as 288 px
                      {"open_raster": (1, 1), "WarpedVRT": (2, 1)}),  # the main thread's second VRT warps back
    }
    for name, (raster, kwargs, extra, expected) in runs.items():
        maps = []
        for readers in (1, 3):
            openers.clear()
            cfg = SegmentConfig(tile_size=64, overlap=16, batch_size=3, read_threads=readers, **extra, **CPU)
            segment(loaded, raster, tmp_path / f"{name}{readers}.tif", cfg, **kwargs)
            maps.append(_read(tmp_path / f"{name}{readers}.tif")[0])
            for what, (in_main, per_reader) in expected.items():
                in_readers = sum(1 for main, w in openers if w == what and not main)
                assert sum(1 for main, w in openers if w == what and main) == in_main, (name, what)
                assert (in_readers >= per_reader) if readers > 1 else (in_readers == 0), (name, readers, what)
        np.testing.assert_array_equal(maps[0], maps[1], err_msg=name)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_uncertainty_comes_from_the_blended_probabilities_of_the_same_pass(demo_scene, trained_model, tmp_path):
    res = segment(trained_model, demo_scene["sar"], tmp_path / "map.tif", SegmentConfig(tile_size=128, **CPU),
                  probabilities=tmp_path / "p.tif", uncertainty=tmp_path / "u.tif", confidence=tmp_path / "c.tif")
    assert res.uncertainty == tmp_path / "u.tif"
    with rasterio.open(tmp_path / "p.tif") as p, rasterio.open(tmp_path / "u.tif") as u:
        probs, unc = p.read(), u.read()
        assert u.descriptions[0] == "normalised entropy" and u.descriptions[1].startswith("margin")
    valid = ~np.isnan(unc[0])
    K = probs.shape[0]
    q = np.clip(probs[:, valid], 1e-12, 1)
    entropy = -(probs[:, valid] * np.log(q)).sum(0) / np.log(K)
    top = np.sort(probs[:, valid], axis=0)
    np.testing.assert_allclose(unc[0][valid], entropy, atol=1e-5)
    np.testing.assert_allclose(unc[1][valid], top[-1] - top[-2], atol=1e-5)
    assert 0 <= unc[0][valid].min() and unc[0][valid].max() <= 1 and (unc[1][valid] >= 0).all()
    assert np.array_equal(np.isnan(unc[0]), np.isnan(probs[0]))  # no data where the map has none
    for name in ("u", "p", "c"):  # grey ramps QGIS picks up
        assert "singlebandgray" in (tmp_path / f"{name}.qml").read_text()


def test_an_extent_and_a_mask_limit_the_map_on_the_input_grid(demo_scene, trained_model, tmp_path):
    from stars_core.segmentation.infer import segment_area
    from stars_core.errors import InputError
    from tests.core.helpers import write_polygons

    with rasterio.open(demo_scene["sar"]) as src:
        t, crs, (l, b, r, top) = src.transform, src.crs.to_wkt(), src.bounds
    px = t.a
    extent = (l + 10.3 * px, b + 20.7 * px, l + 140.2 * px, top - 30.1 * px)  # not on pixel edges
    res = segment_area(trained_model, demo_scene["sar"], tmp_path / "e.tif", SegmentConfig(tile_size=128, **CPU),
                       extent=extent)
    with rasterio.open(res.path) as ds:
        cols, rows = ~t * (ds.transform.c, ds.transform.f)
        assert cols == int(cols) == 10 and rows == int(rows) == 30  # the input's pixel grid, snapped outwards
        assert ds.res == (px, px) and ds.bounds.right >= extent[2] and ds.bounds.bottom <= extent[1]
    tri = {"type": "Polygon", "coordinates": [[(l, top), (r, top), (l, b), (l, top)]]}
    write_polygons(tmp_path / "mask.gpkg", crs, [(tri, 1)])
    masked = segment_area(trained_model, demo_scene["sar"], tmp_path / "m.tif", SegmentConfig(tile_size=128, **CPU),
                          mask=tmp_path / "mask.gpkg")
    with rasterio.open(masked.path) as ds:
        data = ds.read(1)
    rows, cols = np.indices(data.shape)
    assert (data[rows + cols > data.shape[0] + 2] == 255).all()  # outside the mask: no data
    assert (data[rows + cols < data.shape[0] - 2] != 255).mean() > 0.9
    with pytest.raises(InputError, match="does not overlap"):
        segment_area(trained_model, demo_scene["sar"], tmp_path / "x.tif", SegmentConfig(tile_size=128, **CPU),
                     extent=(l - 1e6, b - 1e6, l - 9e5, b - 9e5))


def test_the_top_class_is_argmax_ties_to_the_lower_index_with_its_probability():
    from stars_core.tiling import top_class

    rng = np.random.default_rng(2)
    p = (rng.integers(0, 4, size=(5, 33, 47)) / 4).astype(np.float32)  # quarters: ties everywhere
    best, top = top_class(p)
    np.testing.assert_array_equal(best, p.argmax(axis=0))
    np.testing.assert_array_equal(top, p.max(axis=0))
    assert best.dtype == np.uint8 and (best > 0).any()
    index = np.empty(p.shape[1:], np.int8)  # the temporal filter's rule: ties to the higher index, written in place
    assert top_class(p, index, ties_to_higher=True)[0] is index
    np.testing.assert_array_equal(index, len(p) - 1 - p[::-1].argmax(axis=0))
