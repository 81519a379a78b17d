"""Map sheets: one clipped raster per sheet, a mosaic, a summary, skip-existing, failing sheets."""
import csv

import numpy as np
import rasterio

from stars_core.config import SegmentConfig
from stars_core.sheets import read_sheets, segment_sheets
from tests.core.helpers import write_polygons

CPU = SegmentConfig(tile_size=64, device="cpu")


def test_sheets_mosaic_summary_and_resume(demo_scene, trained_model, tmp_path):
    sheets = read_sheets(demo_scene["sheets"], "name")
    first = segment_sheets(trained_model, demo_scene["sar"], sheets, tmp_path / "out", CPU, log=lambda *_: None)
    assert first.count("done") == 4
    with rasterio.open(first.mosaic) as m, rasterio.open(demo_scene["sar"]) as s:
        assert (m.width, m.height) == (s.width, s.height) and m.crs == s.crs
        assert (m.read(1) != 255).mean() > 0.9
    rows = list(csv.DictReader(open(first.summary)))
    assert [r["status"] for r in rows] == ["done"] * 4
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.tif")}
    again = segment_sheets(trained_model, demo_scene["sar"], sheets, tmp_path / "out", CPU, log=lambda *_: None)
    assert again.count("skipped") == 4
    assert stamp == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.tif")}


def test_a_sheet_is_clipped_to_its_polygon_and_a_bad_sheet_does_not_stop_the_others(demo_scene, trained_model, tmp_path):
    with rasterio.open(demo_scene["sar"]) as s:
        crs, (l, b, r, t) = s.crs.to_wkt(), s.bounds
    tri = {"type": "Polygon", "coordinates": [[(l, t), (r, t), (l, b), (l, t)]]}
    far = {"type": "Polygon", "coordinates": [[(l + 1e6, t), (r + 1e6, t), (l + 1e6, b), (l + 1e6, t)]]}
    path = write_polygons(tmp_path / "sheets.gpkg", crs, [(tri, "tri"), (far, "far")], field="name", field_type="str")
    res = segment_sheets(trained_model, demo_scene["sar"], read_sheets(path, "name"), tmp_path / "out", CPU,
                         log=lambda *_: None)
    assert [r.status for r in res.rows] == ["done", "outside"]
    with rasterio.open(tmp_path / "out" / "tri.tif") as ds:
        data = ds.read(1)
    rows, cols = np.indices(data.shape)
    inside = rows + cols < data.shape[0] - 2  # the triangle is the upper-left half
    outside = rows + cols > data.shape[0] + 2
    assert (data[outside] == 255).all()
    assert (data[inside] != 255).mean() > 0.8
