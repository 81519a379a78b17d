"""`stars evaluate`: hand-computed metrics on a known confusion matrix, grid alignment, reports."""
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from stars_core.classes import ClassTable
from stars_core.evaluate import evaluate, markdown_report, write_reports

CLASSES = ClassTable((1, 2, 3), ("water", "field", "town"), ("#0000ff", "#00ff00", "#ff0000"))


def _write(path, data, nodata, transform=from_origin(500000, 4000000, 10, 10)):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="uint8", crs="EPSG:32633", transform=transform, nodata=nodata) as ds:
        ds.write(data, 1)
    return path


@pytest.fixture
def known(tmp_path):
    """10 x 10 pixels; reference rows 0-4 water, 5-7 field, 8 town, 9 no data (0)."""
    ref = np.zeros((10, 10), np.uint8)
    ref[:5], ref[5:8], ref[8] = 1, 2, 3
    pred = ref.copy()
    pred[9] = 1          # prediction over unlabelled pixels: not counted
    pred[0, :4] = 2      # 4 water -> field
    pred[5, :2] = 3      # 2 field -> town
    pred[8, :1] = 255    # 1 town pixel without prediction
    return _write(tmp_path / "pred.tif", pred, 255), _write(tmp_path / "ref.tif", ref, 0)


def test_metrics_on_a_known_confusion_matrix(known):
    report = evaluate(*known, class_table=CLASSES)
    assert report["confusion"] == [[46, 4, 0], [0, 28, 2], [0, 0, 9]]
    assert report["labelled_without_prediction"] == 1
    pc = report["per_class"]
    assert pc["water"]["iou"] == pytest.approx(46 / 50)
    assert pc["field"]["iou"] == pytest.approx(28 / (30 + 32 - 28))
    assert pc["town"]["iou"] == pytest.approx(9 / 11)
    assert pc["field"]["f1"] == pytest.approx(2 * 28 / (30 + 32))
    assert pc["town"]["precision"] == pytest.approx(9 / 11) and pc["town"]["recall"] == 1.0
    assert report["miou"] == pytest.approx((46 / 50 + 28 / 34 + 9 / 11) / 3)
    assert report["oa"] == pytest.approx(83 / 89)


def test_labels_on_another_grid_are_read_on_the_prediction_grid(known, tmp_path):
    pred, ref = known
    with rasterio.open(ref) as ds:
        fine = np.repeat(np.repeat(ds.read(1), 2, axis=0), 2, axis=1)  # 5 m pixels, same footprint
    fine_ref = _write(tmp_path / "fine.tif", fine, 0, transform=from_origin(500000, 4000000, 5, 5))
    assert evaluate(pred, fine_ref, class_table=CLASSES)["confusion"] == [[46, 4, 0], [0, 28, 2], [0, 0, 9]]


def test_unknown_label_values_and_missing_class_tables_are_clear_errors(known, tmp_path):
    pred, ref = known
    with pytest.raises(ValueError, match="holds no STARS class table"):
        evaluate(pred, ref)
    odd = np.full((10, 10), 7, np.uint8)
    with pytest.raises(ValueError, match=r"label value\(s\) \[7\]"):
        evaluate(pred, _write(tmp_path / "odd.tif", odd, 0), class_table=CLASSES)
    assert evaluate(pred, _write(tmp_path / "odd2.tif", odd, 0), class_table=CLASSES, ignore_values=[7])["pixels"] == 0


def test_reports_are_written(known, tmp_path):
    report = evaluate(*known, class_table=CLASSES)
    write_reports(report, tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.html", tmp_path / "r.png")
    md = (tmp_path / "r.md").read_text()
    assert "| 3 | town | 0.8182 |" in md and md == markdown_report(report)
    assert "r.png" in (tmp_path / "r.html").read_text()
    assert (tmp_path / "r.png").stat().st_size > 1000
