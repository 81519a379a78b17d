"""The paired-raster pipeline: alignment, polygon labels, class tables, splits and clear errors."""
import csv

import numpy as np
import pytest
import rasterio
from rasterio.features import shapes
from rasterio.windows import Window

from stars_core.classes import IGNORE, ClassTable
from stars_core.config import DataConfig
from stars_core.training.data import CELL, SceneSpec, augment, prepare_training_data
from stars_core.demo_scene import cut_scene_table
from stars_core.errors import InputError
from tests.core.helpers import reproject_raster, rewrite, write_polygons

QUIET = {"log": lambda *_: None}


def _prepare(specs, class_table=None, seed=0, log=None, **data):
    return prepare_training_data(specs, DataConfig(class_table=class_table, **data), seed, log=log)


def _spec(p, **kw):
    return SceneSpec(str(kw.get("m1", p["sar"])), str(kw.get("m2", p["optical"])), str(kw.get("labels", p["labels"])),
                     kw.get("class_field"))


def test_prepare_reads_table_stats_and_plans_chips(demo_scene):
    data = _prepare([_spec(demo_scene)], str(demo_scene["classes"]), chip_size=64, **QUIET)
    assert data.table.names[0] == "buildings" and len(data.table) == 6
    assert data.stats[0].names == ("VV", "VH") and data.stats[1].names == ("B", "G", "R", "NIR")
    assert -25 < data.stats[0].mean[0] < 0 < data.stats[1].mean[3]  # dB vs reflectance
    assert len(data.plan.val) >= 1 and len(data.plan.train) > 100
    assert (data.plan.class_counts > 0).all()


def test_training_chips_never_touch_validation_blocks(demo_scene):
    data = _prepare([_spec(demo_scene)], str(demo_scene["classes"]), chip_size=64,
                                 val_fraction=0.3, **QUIET)
    k = data.chip_size
    for _, vr, vc in data.plan.val:
        tr, tc = data.plan.train[:, 1], data.plan.train[:, 2]
        overlap = (tr < vr + k) & (tr + k > vr) & (tc < vc + k) & (tc + k > vc)
        assert not overlap.any()


def test_chips_hold_mostly_labelled_pixels(demo_scene):
    data = _prepare([_spec(demo_scene)], str(demo_scene["classes"]), chip_size=64,
                                 min_valid=0.9, **QUIET)
    scene = data.scenes[0]
    for _, r, c in data.plan.train[:: max(1, len(data.plan.train) // 20)]:
        _, _, y, _, _ = scene.read(Window(int(c), int(r), 64, 64))
        assert (y != IGNORE).mean() >= 0.85  # cell-grid estimate of the 0.9 threshold


def test_misaligned_optical_is_warped_onto_the_sar_grid(demo_scene, tmp_path):
    moved = reproject_raster(demo_scene["optical"], tmp_path / "optical_3857.tif", "EPSG:3857", 3.0)
    data = _prepare([_spec(demo_scene, m2=moved)], str(demo_scene["classes"]), chip_size=64, **QUIET)
    ref = _prepare([_spec(demo_scene)], str(demo_scene["classes"]), chip_size=64, **QUIET)
    window = Window(96, 96, 64, 64)
    warped = data.scenes[0].read(window)[1].astype(float)
    original = ref.scenes[0].read(window)[1].astype(float)
    assert warped.shape == original.shape
    assert np.corrcoef(warped[3].ravel(), original[3].ravel())[0, 1] > 0.8


def _polygon_labels(demo_scene, tmp_path, as_names=False):
    with rasterio.open(demo_scene["labels"]) as ds:
        labels, transform, wkt = ds.read(1), ds.transform, ds.crs.to_wkt()
    table = ClassTable.from_file(demo_scene["classes"])
    items = [(g, table.names[int(v) - 1] if as_names else int(v))
             for g, v in shapes(labels, mask=labels > 0, transform=transform)]
    return write_polygons(tmp_path / "labels.gpkg", wkt, items, field_type="str" if as_names else "int"), labels


@pytest.mark.parametrize("as_names", [False, True])
def test_polygon_labels_rasterise_to_the_raster_labels(demo_scene, tmp_path, as_names):
    gpkg, labels = _polygon_labels(demo_scene, tmp_path, as_names)
    data = _prepare([_spec(demo_scene, labels=gpkg, class_field="class")],
                                 str(demo_scene["classes"]), chip_size=64, **QUIET)
    _, _, y, _, _ = data.scenes[0].read(Window(0, 0, 256, 256))
    expected = np.where(labels > 0, labels.astype(int) - 1, IGNORE)
    sar_ok = np.isfinite(rasterio.open(demo_scene["sar"]).read()).all(0)
    assert (y[sar_ok] == expected[sar_ok]).mean() > 0.99


def test_class_table_generated_from_raster_colours(demo_scene):
    data = _prepare([_spec(demo_scene)], chip_size=64, **QUIET)
    assert data.table.values == (1, 2, 3, 4, 5, 6)
    assert data.table.colors[0] == "#d7191c"  # from labels.tif's colour table


def test_error_label_value_missing_from_table(demo_scene, tmp_path):
    table = tmp_path / "classes.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["value", "name", "color"])
        w.writerows([(v, f"c{v}", "#000000") for v in range(1, 6)])  # 6 is missing
    with pytest.raises(ValueError, match=r"label value\(s\) \[6\].*--ignore-value"):
        _prepare([_spec(demo_scene)], str(table), chip_size=64, **QUIET)
    # Ignoring it is the documented way out.
    data = _prepare([_spec(demo_scene)], str(table), ignore_values=[6], chip_size=64, **QUIET)
    assert len(data.table) == 5


def test_error_no_overlap(demo_scene, tmp_path):
    with rasterio.open(demo_scene["optical"]) as ds:
        far = ds.transform * ds.transform.translation(100000, 0)
    moved = rewrite(demo_scene["optical"], tmp_path / "far.tif", transform=far)
    with pytest.raises(ValueError, match="does not overlap"):
        _prepare([_spec(demo_scene, m2=moved)], str(demo_scene["classes"]), chip_size=64, **QUIET)


def test_error_band_count_mismatch_between_scenes(demo_scene, tmp_path):
    three = rewrite(demo_scene["optical"], tmp_path / "rgb.tif", count=3)
    with pytest.raises(ValueError, match="band count mismatch.*has 3 band.*first scene.s 4"):
        _prepare([_spec(demo_scene), _spec(demo_scene, m2=three)], str(demo_scene["classes"]),
                              chip_size=64, **QUIET)


def test_error_empty_and_disjoint_aoi(demo_scene, tmp_path):
    wkt = rasterio.open(demo_scene["sar"]).crs.to_wkt()
    empty = write_polygons(tmp_path / "empty.gpkg", wkt, [])
    with pytest.raises(ValueError, match="holds no polygon"):
        _prepare([_spec(demo_scene)], str(demo_scene["classes"]), aoi=str(empty), chip_size=64, **QUIET)
    square = {"type": "Polygon", "coordinates": [[(0, 0), (10, 0), (10, 10), (0, 10), (0, 0)]]}
    far = write_polygons(tmp_path / "far.gpkg", wkt, [(square, 1)])
    with pytest.raises(ValueError, match="does not overlap any training scene"):
        _prepare([_spec(demo_scene)], str(demo_scene["classes"]), aoi=str(far), chip_size=64, **QUIET)


def test_aoi_limits_chip_positions(demo_scene, tmp_path):
    with rasterio.open(demo_scene["sar"]) as ds:
        b, wkt = ds.bounds, ds.crs.to_wkt()
    midx = (b.left + b.right) / 2
    west = {"type": "Polygon", "coordinates": [[(b.left, b.bottom), (midx, b.bottom), (midx, b.top),
                                                (b.left, b.top), (b.left, b.bottom)]]}
    aoi = write_polygons(tmp_path / "west.gpkg", wkt, [(west, 1)])
    data = _prepare([_spec(demo_scene)], str(demo_scene["classes"]), aoi=str(aoi), chip_size=64,
                                 val_fraction=0, **QUIET)
    assert data.plan.train[:, 2].max() + 64 <= 128 + CELL  # inside the west half, up to the cell grid
    assert data.plan.train[:, 2].min() == 0


def test_error_all_chips_mostly_nodata(demo_scene, tmp_path):
    labels = rasterio.open(demo_scene["labels"]).read()
    sparse = np.zeros_like(labels)
    sparse[:, ::4, ::4] = labels[:, ::4, ::4]  # 1 pixel in 16 labelled
    path = rewrite(demo_scene["labels"], tmp_path / "sparse.tif", data=sparse)
    with pytest.raises(ValueError, match="mostly no-data.*--chip-size.*--min-valid"):
        _prepare([_spec(demo_scene, labels=path)], str(demo_scene["classes"]), chip_size=64, **QUIET)
    none = rewrite(demo_scene["labels"], tmp_path / "none.tif", data=np.zeros_like(labels))
    with pytest.raises(ValueError, match="no labelled pixel"):
        _prepare([_spec(demo_scene, labels=none)], str(demo_scene["classes"]), chip_size=64, **QUIET)


def test_augment_applies_one_transform_to_all():
    a = np.arange(2 * 4 * 4).reshape(2, 4, 4)
    b = np.arange(16).reshape(4, 4)
    for k in range(8):
        ta, tb = augment([a, b], k)
        assert np.array_equal(ta[0] - ta[0].min(), augment([a[0] - a[0].min()], k)[0])
        assert np.array_equal(ta[1] - 16, tb)  # band 1 of a is b + 16, transformed alike
    assert len({augment([b], k)[0].tobytes() for k in range(8)}) == 8


def test_a_scene_table_of_a_hundred_scenes_trains_with_few_open_files(demo_scene, tmp_path):
    import subprocess
    import sys

    table = cut_scene_table(demo_scene, tmp_path / "scenes", 100)  # 3-5 files each, 64 may be open
    code = ("import sys; from stars_core.cli import main; sys.exit(main(sys.argv[1:]))")
    cmd = (f"ulimit -n 64; {sys.executable} -c '{code}' train --scenes {table} --class-table {demo_scene['classes']} "
           f"--ignore-value 0 --out {tmp_path / 'm.stars'} --backbone resnet18 --encoder-width 16 --steps 2 "
           f"--batch-size 2 --chip-size 32 --workers 0 --device cpu --val-every 2 --checkpoint-every 2")  # 1 validation
    result = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-1500:]
    import torch

    assert torch.load(tmp_path / "m.stars", weights_only=True)["summary"]["scenes"] == 100


def test_bad_scenes_are_named_and_can_be_skipped(demo_scene, tmp_path):
    from stars_core.config import DataConfig
    from stars_core.training.data import read_scene_table

    table = cut_scene_table(demo_scene, tmp_path / "s", 3)
    text = table.read_text().splitlines()
    text.append("missing_sar.tif,opt_0000.tif,lab_0000.tif,,broken one")
    table.write_text("\n".join(text) + "\n")
    specs = read_scene_table(table)
    assert specs[0].name == "tile 0" and specs[0].m1 == str(tmp_path / "s" / "sar_0000.tif")
    cfg = dict(class_table=str(demo_scene["classes"]), chip_size=32)
    with pytest.raises(InputError, match="scene broken one: modality-1 raster .*missing_sar.tif.* not found"):
        prepare_training_data(specs, DataConfig(**cfg), log=lambda *_: None)
    messages = []
    data = prepare_training_data(specs, DataConfig(skip_bad_scenes=True, **cfg), log=messages.append)
    assert len(data.scenes) == 3 and data.skipped[0]["scene"] == "broken one"
    assert any(m.startswith("skipping scene broken one") for m in messages)
    with pytest.raises(InputError, match="needs the columns m1, m2 and labels"):
        bad = tmp_path / "bad.csv"
        bad.write_text("sar,optical\na,b\n")
        read_scene_table(bad)


def test_a_repeated_run_reads_its_scans_from_the_cache(demo_scene, tmp_path):
    cache = str(tmp_path / "m.scan.npz")
    cfg = DataConfig(class_table=str(demo_scene["classes"]), chip_size=64, scan_cache=cache)
    messages = []
    first = prepare_training_data([_spec(demo_scene)], cfg, log=messages.append)
    assert any(m.startswith("scanning scene 1/1") for m in messages)
    messages.clear()
    again = prepare_training_data([_spec(demo_scene)], cfg, log=messages.append)
    assert not any(m.startswith("scanning") for m in messages) and any("from" in m and cache in m for m in messages)
    assert again.stats == first.stats and (again.plan.train == first.plan.train).all()
    other_seed = prepare_training_data([_spec(demo_scene)], cfg, seed=5, log=messages.append)  # another key
    assert any(m.startswith("scanning") for m in messages) and other_seed.stats != first.stats
