"""Confusion matrix and the metrics derived from it, checked against hand-computed values."""
import math

import numpy as np
import pytest
import torch

from stars_core.classes import IGNORE
from stars_core.metrics import confusion_matrix, metrics_from_confusion
from stars_core.errors import InputError

# Reference / prediction for 3 classes; 255 = ignore, 7 = a reference value outside 0..2.
TARGET = np.array([[0, 0, 0, 1], [1, 1, 2, 2], [IGNORE, IGNORE, 7, 0]])
PRED = np.array([[0, 0, 1, 1], [1, 2, 2, 0], [1, 2, 0, 2]])
EXPECTED = [[2, 1, 1],   # reference 0: 2 right, one each called 1 and 2
            [0, 2, 1],   # reference 1
            [1, 0, 1]]   # reference 2


def test_confusion_matrix_rows_are_reference_and_ignored_pixels_are_skipped():
    cm = confusion_matrix(PRED, TARGET, 3)
    assert cm.dtype == np.int64 and cm.tolist() == EXPECTED
    assert cm.sum() == 9  # 12 pixels less the 2 ignored and the out-of-range reference 7
    # Torch tensors (as in training validation) count the same.
    assert confusion_matrix(torch.from_numpy(PRED), torch.from_numpy(TARGET), 3).tolist() == EXPECTED
    # Another ignore index: 255 is then an out-of-range reference (skipped), 0 is ignored.
    assert confusion_matrix(PRED, TARGET, 3, ignore_index=0).tolist() == [[0, 0, 0], [0, 2, 1], [1, 0, 1]]


def test_predictions_outside_the_classes_are_an_error_only_where_counted():
    pred = PRED.copy()
    pred[2, 0] = IGNORE  # over an ignored reference pixel: fine
    assert confusion_matrix(pred, TARGET, 3).tolist() == EXPECTED
    pred[0, 0] = 3
    with pytest.raises(InputError, match=r"outside 0\.\.2"):
        confusion_matrix(pred, TARGET, 3)
    with pytest.raises(InputError, match=r"outside 0\.\.2"):
        confusion_matrix(np.where(PRED == 1, -1, PRED), TARGET, 3)


def test_metrics_from_a_known_confusion_matrix():
    m = metrics_from_confusion(np.array(EXPECTED), ["a", "b", "c"])
    pc = m["per_class"]
    # a: tp 2, reference 4, predicted 3; b: tp 2, ref 3, pred 3; c: tp 1, ref 2, pred 3.
    assert pc["a"] == pytest.approx({"iou": 2 / 5, "f1": 4 / 7, "precision": 2 / 3, "recall": 2 / 4, "pixels": 4})
    assert pc["b"] == pytest.approx({"iou": 2 / 4, "f1": 4 / 6, "precision": 2 / 3, "recall": 2 / 3, "pixels": 3})
    assert pc["c"] == pytest.approx({"iou": 1 / 4, "f1": 2 / 5, "precision": 1 / 3, "recall": 1 / 2, "pixels": 2})
    assert m["miou"] == pytest.approx((2 / 5 + 2 / 4 + 1 / 4) / 3)
    assert m["mf1"] == pytest.approx((4 / 7 + 4 / 6 + 2 / 5) / 3)
    assert m["oa"] == pytest.approx(5 / 9) and m["pixels"] == 9
    assert m["confusion"] == EXPECTED and m["class_names"] == ["a", "b", "c"]
    assert list(metrics_from_confusion(np.array(EXPECTED))["per_class"]) == ["0", "1", "2"]


def test_classes_absent_from_both_are_none_and_left_out_of_the_means():
    cm = np.array([[3, 0, 1], [0, 0, 0], [1, 0, 5]])  # class 1 is neither in the reference nor predicted
    m = metrics_from_confusion(cm, ["a", "gone", "c"])
    assert m["per_class"]["gone"] == {"iou": None, "f1": None, "precision": None, "recall": None, "pixels": 0}
    assert m["miou"] == pytest.approx((3 / 5 + 5 / 7) / 2)
    assert m["mf1"] == pytest.approx((6 / 8 + 10 / 12) / 2)
    assert m["oa"] == pytest.approx(8 / 10)


def test_classes_in_only_one_side_count_as_zero_in_the_means():
    # Class 1 is predicted but never in the reference; class 2 is in the reference but never predicted.
    cm = np.array([[4, 1, 0], [0, 0, 0], [0, 2, 0]])
    m = metrics_from_confusion(cm, ["a", "false", "missed"])
    pc = m["per_class"]
    assert pc["false"]["iou"] == 0 and pc["false"]["f1"] == 0 and pc["false"]["precision"] == 0
    assert pc["false"]["recall"] is None and pc["false"]["pixels"] == 0
    assert pc["missed"]["iou"] == 0 and pc["missed"]["recall"] == 0 and pc["missed"]["precision"] is None
    assert m["miou"] == pytest.approx((4 / 5 + 0 + 0) / 3)
    assert m["mf1"] == pytest.approx((8 / 9) / 3)


def test_an_empty_confusion_matrix_gives_nan_not_an_error():
    m = metrics_from_confusion(np.zeros((3, 3), np.int64))
    assert math.isnan(m["miou"]) and math.isnan(m["mf1"]) and math.isnan(m["oa"])
    assert m["pixels"] == 0 and all(v["iou"] is None for v in m["per_class"].values())
    # Everything ignored gives that empty matrix.
    cm = confusion_matrix(np.zeros((2, 2), np.uint8), np.full((2, 2), IGNORE, np.uint8), 3)
    assert cm.tolist() == [[0] * 3] * 3
