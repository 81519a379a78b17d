"""A quick-look PNG: the SAR input, the optical image, the map made from SAR alone and the reference
labels side by side, with the class legend. Rasters are read decimated (`max_size` pixels a side),
so it works on whole scenes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import from_bounds

from .classes import ClassTable, rgb
from .files import atomic_path
from .errors import InputError


def _read(path: str | os.PathLike, bands: Sequence[int], max_size: int, resampling: Resampling,
          ref=None) -> tuple[np.ndarray, np.ndarray]:
    """(bands, h, w) float array and its valid mask, decimated to at most max_size; on the grid of
    `ref` (a rasterio dataset) when given, so every panel covers the same ground."""
    with rasterio.open(path) as ds:
        if ref is not None and ds.crs != ref.crs:
            raise InputError(f"{path} is in {ds.crs}, the SAR raster in {ref.crs}: the quick-look needs one "
                             "CRS; reproject it first (e.g. gdalwarp -t_srs)")
        scale = max(ds.width, ds.height) / max_size
        shape = (len(bands), max(1, round(ds.height / max(scale, 1))), max(1, round(ds.width / max(scale, 1))))
        window = None
        if ref is not None and (ds.transform != ref.transform or ds.shape != ref.shape):
            window = from_bounds(*ref.bounds, transform=ds.transform)
            ref_scale = max(ref.width, ref.height) / max_size
            shape = (len(bands), max(1, round(ref.height / max(ref_scale, 1))),
                     max(1, round(ref.width / max(ref_scale, 1))))
        data = ds.read(list(bands), out_shape=shape, resampling=resampling, window=window, boundless=window is not None,
                       masked=True)
    valid = ~np.ma.getmaskarray(data).any(axis=0)
    arr = np.ma.filled(data.astype(np.float64), np.nan)
    valid &= np.isfinite(arr).all(axis=0)
    return arr, valid


def _stretch(arr: np.ndarray, valid: np.ndarray, lo: float = 2, hi: float = 98) -> np.ndarray:
    """Per-band percentile stretch to 0..1; invalid pixels white."""
    out = np.ones(arr.shape[1:] + (arr.shape[0],))
    for i, band in enumerate(arr):
        if valid.any():
            a, b = np.percentile(band[valid], [lo, hi])
            out[..., i] = np.where(valid, np.clip((band - a) / max(b - a, 1e-9), 0, 1), 1.0)
    return out if arr.shape[0] > 1 else np.repeat(out, 3, axis=2)


def _classes_rgb(arr: np.ndarray, valid: np.ndarray, classes: ClassTable) -> np.ndarray:
    out = np.ones(arr.shape[1:] + (3,))
    for value, colour in zip(classes.values, classes.colors):
        out[(arr[0] == value) & valid] = np.array(rgb(colour)) / 255.0
    return out


def quicklook(sar: str | os.PathLike, prediction: str | os.PathLike, labels: str | os.PathLike,
              classes: ClassTable, path: str | os.PathLike, optical: str | os.PathLike | None = None,
              optical_bands: Sequence[int] = (3, 2, 1), boxes: Sequence[tuple[str, tuple]] = (),
              title: str | None = None, max_size: int = 640) -> Path:
    """Write the panels as one PNG. `boxes`: (label, (left, bottom, right, top)) rectangles in map
    coordinates drawn on the prediction (e.g. the sheet held out of training)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as mpatches
    import matplotlib.pyplot as plt

    with rasterio.open(sar) as ref:
        sar_arr, sar_ok = _read(sar, [1], max_size, Resampling.average)
        panels = [("SAR (VV) - the only input of the map", _stretch(sar_arr, sar_ok))]
        if optical is not None:
            opt, opt_ok = _read(optical, optical_bands, max_size, Resampling.average, ref)
            panels.append(("optical - used in training only", _stretch(opt, opt_ok)))
        pred, pred_ok = _read(prediction, [1], max_size, Resampling.mode, ref)
        panels.append(("STARS map from SAR alone", _classes_rgb(pred, pred_ok, classes)))
        lab, lab_ok = _read(labels, [1], max_size, Resampling.mode, ref)
        panels.append(("reference labels", _classes_rgb(lab, lab_ok, classes)))
        extent = (ref.bounds.left, ref.bounds.right, ref.bounds.bottom, ref.bounds.top)

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.9))
    for ax, (name, img) in zip(axes, panels):
        ax.imshow(img, extent=extent, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([]), ax.set_yticks([])
    pred_ax = axes[len(panels) - 2]
    for label, (left, bottom, right, top) in boxes:
        pred_ax.add_patch(mpatches.Rectangle((left, bottom), right - left, top - bottom, fill=False, ec="black",
                                             lw=1.5, ls="--"))
        pred_ax.text(left + 0.02 * (right - left), top - 0.03 * (top - bottom), label, va="top", fontsize=8,
                     bbox={"fc": "white", "alpha": 0.8, "lw": 0})
    handles = [mpatches.Patch(color=np.array(rgb(c)) / 255.0, label=n) for n, c in zip(classes.names, classes.colors)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95 if title else 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return Path(path)
