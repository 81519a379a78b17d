"""A year over a scene: the series' uint8 probabilities written straight from segment's tile loop
(the values the float-then-convert pass gave), and the series split across processes under torchrun
(the same files as one process)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from stars_core.config import SegmentConfig
from tests.core.test_series import series  # noqa: F401 (the module's four-date series fixture)

CPU = dict(tile_size=128, device="cpu", runtime="torch")


def _pixels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as ds:
        return ds.read(), ds.read_masks(1)


@pytest.mark.parametrize("resample", [False, True], ids=["on the input grid", "on the model's grid, warped back"])
def test_uint8_probabilities_from_the_tile_loop_equal_the_float_ones_converted(trained_model, demo_scene, tmp_path,
                                                                             resample):
    from stars_core.change.series import to_uint8
    from stars_core.segmentation.infer import segment
    from tests.core.helpers import rewrite

    raster = demo_scene["sar"]
    if resample:  # pixels twice the model's: segmented at the model's size and brought back
        with rasterio.open(raster) as src:
            t = src.transform
        raster = rewrite(raster, tmp_path / "coarse.tif", transform=t * t.scale(2, 2))
    cfg = SegmentConfig(**CPU, resample=resample)
    segment(trained_model, raster, tmp_path / "a.tif", cfg, probabilities=tmp_path / "float.tif")
    to_uint8(tmp_path / "float.tif", tmp_path / "converted.tif")
    segment(trained_model, raster, tmp_path / "b.tif", SegmentConfig(**CPU, resample=resample, probability_dtype="uint8"),
            probabilities=tmp_path / "direct.tif")
    assert np.array_equal(_pixels(tmp_path / "a.tif")[0], _pixels(tmp_path / "b.tif")[0])  # the same map
    (converted, mask_c), (direct, mask_d) = _pixels(tmp_path / "converted.tif"), _pixels(tmp_path / "direct.tif")
    with rasterio.open(tmp_path / "direct.tif") as ds:
        assert ds.dtypes[0] == "uint8" and ds.tags()["STARS_PROBABILITY_SCALE"] == "1/255"
        assert ds.descriptions == rasterio.open(tmp_path / "float.tif").descriptions
    assert (mask_d == 0).any() == (mask_c == 0).any() and np.array_equal(mask_c, mask_d)
    assert np.array_equal(converted, direct)  # pixel for pixel: rounded from the same float32 values
    assert len({int(v) for v in np.unique(direct)}) > 50  # a real spread of probabilities, not a constant
    assert not list(tmp_path.glob("*.msk"))  # the mask inside the file


def test_the_series_writes_uint8_without_a_float_file_and_the_filter_is_unchanged(series, trained_model, tmp_path,  # noqa: F811
                                                                                monkeypatch):
    import stars_core.change.series as series_mod
    from stars_core.change.series import DateInput, filter_folder, segment_series
    from stars_core.change.temporal import filter_series
    from stars_core.segmentation.infer import segment

    folder = series["folder"]
    dates = [DateInput(p.name[3:13], str(p)) for p in sorted(folder.glob("S1_*.tif"))][:3]
    conversions = []
    monkeypatch.setattr(series_mod, "to_uint8", lambda *a: conversions.append(a))
    out = tmp_path / "series"
    segment_series(trained_model, dates, out, SegmentConfig(**CPU), probabilities=True, log=lambda m: None)
    assert not conversions  # no conversion pass
    filter_folder(out, 0.2)
    # today's way: float probabilities, then converted, then the filter
    old = tmp_path / "old"
    old.mkdir()
    for d in dates:
        segment(trained_model, d.path, old / f"{d.date}.tif", SegmentConfig(**CPU), probabilities=old / f"{d.date}_f.tif")
    monkeypatch.undo()  # the conversion of today, to compare with
    for d in dates:
        series_mod.to_uint8(old / f"{d.date}_f.tif", old / f"{d.date}_p.tif")
        p_new, p_old = _pixels(out / f"{d.date}_probabilities.tif"), _pixels(old / f"{d.date}_p.tif")
        assert np.array_equal(p_new[0], p_old[0]) and np.array_equal(p_new[1], p_old[1])
        assert np.array_equal(_pixels(out / f"{d.date}.tif")[0], _pixels(old / f"{d.date}.tif")[0])
    filter_series([old / f"{d.date}_p.tif" for d in dates], [old / f"{d.date}.tif" for d in dates],
                  [old / f"{d.date}_filtered.tif" for d in dates], 0.2)
    for d in dates:
        assert np.array_equal(_pixels(out / f"{d.date}_filtered.tif")[0], _pixels(old / f"{d.date}_filtered.tif")[0])
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
