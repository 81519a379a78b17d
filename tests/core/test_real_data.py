"""Real Sentinel-1/2 tiles (../shared/data/terramind, when present): float64 dB radar, int16 12-band
optical, a no-data label class and one UTM zone per tile, trained together and segmented from S1."""
import csv

import numpy as np
import pytest
import rasterio

from stars_core.config import SegmentConfig
from stars_core.training.data import SceneSpec
from stars_core.evaluate import evaluate
from stars_core.segmentation.infer import segment
from stars_core.training.train import train
from tests.conftest import SHARED_DATA
from tests.core.helpers import TINY_MODEL, tiny_train

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "S1RTC").is_dir(), reason="no real sample data in ../shared/data")
TRAIN_TILES = ["282D_485L_3_3", "433D_629L_3_1"]  # EPSG 32722 and 32718
TEST_TILE = "637U_59R_1_3"  # EPSG 32616


def test_train_on_two_utm_zones_and_segment_a_third_from_s1(tmp_path):
    table = tmp_path / "lulc.csv"
    with open(table, "w", newline="") as f:
        csv.writer(f).writerows([("value", "name", "color")] + [(v, f"lulc {v}", "#808080") for v in range(1, 10)])
    specs = [SceneSpec(str(SHARED_DATA / "S1RTC" / f"{t}.tif"), str(SHARED_DATA / "S2L2A" / f"{t}.tif"),
                       str(SHARED_DATA / "LULC" / f"{t}.tif")) for t in TRAIN_TILES]
    model = tmp_path / "real.stars"
    result = train(specs, model, TINY_MODEL, **tiny_train(steps=3, chip_size=96, val_fraction=0, class_table=str(table), ignore_values=[0]), modalities=("S1", "S2"), log=lambda *_: None)
    assert result.steps_done == 3 and np.isfinite(result.summary["last"]["total"])

    s1 = SHARED_DATA / "S1RTC" / f"{TEST_TILE}.tif"
    out = segment(model, s1, tmp_path / "map.tif", SegmentConfig(tile_size=128, device="cpu"))
    with rasterio.open(out.path) as ds, rasterio.open(s1) as src:
        assert ds.crs == src.crs and ds.transform == src.transform and ds.shape == src.shape
        values = np.unique(ds.read(1))
    assert set(values.tolist()) <= set(range(1, 10)) | {255}
    report = evaluate(out.path, SHARED_DATA / "LULC" / f"{TEST_TILE}.tif", ignore_values=[0])
    assert report["pixels"] == 224 * 224 and 0 <= report["miou"] <= 1
