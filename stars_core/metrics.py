"""Confusion matrix and the metrics derived from it (IoU, F1, mIoU, mF1, overall accuracy).

One implementation serves training validation and `stars evaluate`.
"""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np

from .classes import IGNORE
from .errors import InputError


def confusion_matrix(pred, target, num_classes: int, ignore_index: int = IGNORE) -> np.ndarray:
    """(K, K) int64 counts, rows = reference class, columns = predicted class; ignored pixels skipped."""
    torch = sys.modules.get("torch")  # a tensor means PyTorch is loaded: `stars evaluate` need not load it
    if torch is not None and isinstance(pred, torch.Tensor):
        pred, target = pred.detach().cpu().numpy(), target.detach().cpu().numpy()
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    keep = (target != ignore_index) & (target < num_classes) & (target >= 0)
    bad = (pred[keep] < 0) | (pred[keep] >= num_classes)
    if bad.any():
        raise InputError(f"predictions hold class indices outside 0..{num_classes - 1}")
    idx = target[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def metrics_from_confusion(cm: np.ndarray, names: Sequence[str] | None = None) -> dict:
    """Per-class IoU, F1, precision and recall; their means over classes present in the reference
    or the prediction (absent classes are NaN per class and left out of the means); OA."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    ref, pred = cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (ref + pred - tp)
        precision = tp / pred
        recall = tp / ref
        f1 = 2 * tp / (ref + pred)
    present = (ref + pred) > 0
    names = list(names) if names is not None else [str(i) for i in range(len(cm))]
    total = cm.sum()
    return {
        "miou": float(np.nanmean(iou[present])) if present.any() else float("nan"),
        "mf1": float(np.nanmean(f1[present])) if present.any() else float("nan"),
        "oa": float(tp.sum() / total) if total else float("nan"),
        "pixels": int(total),
        "per_class": {
            n: {"iou": _num(iou[i]), "f1": _num(f1[i]), "precision": _num(precision[i]),
                "recall": _num(recall[i]), "pixels": int(ref[i])}
            for i, n in enumerate(names)
        },
        "confusion": cm.astype(np.int64).tolist(),
        "class_names": names,
    }


def _num(v: float) -> float | None:
    return None if np.isnan(v) else float(v)
