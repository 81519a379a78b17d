"""The demo scene generator: georeferenced files, the classes, and a task SAR alone finds hard."""
import csv

import numpy as np
import rasterio

from stars_core.demo_scene import CLASSES, make_demo_scene


def test_files_share_one_utm_grid(demo_scene):
    grids = []
    for name, count, dtype in (("sar", 2, "float32"), ("optical", 4, "uint16"), ("labels", 1, "uint8")):
        with rasterio.open(demo_scene[name]) as ds:
            assert (ds.count, ds.dtypes[0]) == (count, dtype)
            assert ds.crs.to_epsg() == 32632
            grids.append((ds.transform, ds.width, ds.height))
    assert grids[0] == grids[1] == grids[2]
    with rasterio.open(demo_scene["sar"]) as ds:
        assert ds.descriptions == ("VV", "VH")
        sar = ds.read()
    valid = np.isfinite(sar)
    assert 0.7 < valid.mean() < 1.0  # a NaN swath edge
    assert -35 < np.nanmedian(sar[0]) < 0  # backscatter in dB


def test_labels_hold_every_class_and_a_nodata_border(demo_scene):
    with rasterio.open(demo_scene["labels"]) as ds:
        labels = ds.read(1)
        assert ds.nodata == 0
        assert ds.colormap(1)[1][:3] == (0xd7, 0x19, 0x1c)
    assert set(np.unique(labels)) == {0} | {v for v, _, _ in CLASSES}
    assert (labels[0] == 0).all() and (labels[:, -1] == 0).all()
    with open(demo_scene["classes"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [n for _, n, _ in CLASSES]


def test_sheets_cover_the_scene(tmp_path):
    from stars_core.raster import read_polygons

    paths = make_demo_scene(tmp_path, size=128, seed=2, sheets=(2, 3))
    wkt, items = read_polygons(paths["sheets"], field="name")
    assert sorted(v for _, v in items) == ["A1", "A2", "A3", "B1", "B2", "B3"]
    coords = np.array([xy for geom, _ in items for xy in geom["coordinates"][0]])
    with rasterio.open(paths["sar"]) as ds:
        b = ds.bounds
        assert rasterio.crs.CRS.from_wkt(wkt) == ds.crs
    assert np.allclose([coords[:, 0].min(), coords[:, 1].min(), coords[:, 0].max(), coords[:, 1].max()],
                       [b.left, b.bottom, b.right, b.top])


def test_seed_reproduces_and_changes_the_scene(tmp_path):
    a = make_demo_scene(tmp_path / "a", size=128, seed=5)
    b = make_demo_scene(tmp_path / "b", size=128, seed=5)
    c = make_demo_scene(tmp_path / "c", size=128, seed=6)
    read = lambda p: rasterio.open(p).read()  # noqa: E731
    assert np.array_equal(read(a["labels"]), read(b["labels"]))
    assert not np.array_equal(read(a["labels"]), read(c["labels"]))


def _nearest_centroid_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    classes = np.unique(y)
    centroids = np.stack([x[y == c].mean(0) for c in classes])
    scale = x.std(0)
    d = (((x[:, None, :] - centroids[None]) / scale) ** 2).sum(-1)
    return float((classes[d.argmin(1)] == y).mean())


def test_optical_separates_classes_that_sar_confuses(demo_scene):
    labels = rasterio.open(demo_scene["labels"]).read(1).ravel()
    sar = rasterio.open(demo_scene["sar"]).read().reshape(2, -1).T
    opt = rasterio.open(demo_scene["optical"]).read().reshape(4, -1).T.astype(float)
    ok = (labels > 0) & np.isfinite(sar).all(1)
    acc_sar = _nearest_centroid_accuracy(sar[ok], labels[ok])
    acc_opt = _nearest_centroid_accuracy(opt[ok], labels[ok])
    assert acc_opt > 0.85
    assert acc_sar < acc_opt - 0.2
