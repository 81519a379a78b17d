"""`make demo-fetch` (scripts/demo_fetch.py): the truth it labels the sample from lands on the fetched
grid in the fetched labels' codes, so the estimated areas it prints are compared with the right truth."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("pystac_client")


def _demo():
    spec = importlib.util.spec_from_file_location("demo_fetch", ROOT / "scripts" / "demo_fetch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_truth_is_recoded_onto_the_fetched_grid(servers, tmp_path):
    from stars_core.fetch.run import FetchConfig, fetch

    demo = _demo()
    cfg = FetchConfig(aoi=demo.area_of(servers, margin=0.17), start="2024-04-01", end="2024-04-30",
                      stac_url=servers.stac.url)
    fetch("pair", cfg, tmp_path / "pair", log=lambda _: None)
    labels = tmp_path / "pair" / "labels.tif"
    series = servers.catalogue["scene"]["series"]
    first = sorted(series.glob("labels_*.tif"))[0]  # the first date's truth: the scene WorldCover was made from
    truth = demo.truth_on_grid(first, labels, tmp_path / "truth.tif")
    with rasterio.open(truth) as t, rasterio.open(labels) as fetched:
        assert (t.crs, t.transform, t.shape) == (fetched.crs, fetched.transform, fetched.shape)
        np.testing.assert_array_equal(t.read(1), fetched.read(1))
        assert set(np.unique(t.read(1))) <= {0, 10, 40, 50, 60, 80}  # WorldCover codes, as the model's classes
