"""Figures shared by evaluation and the training diagnostics: matplotlib on the Agg backend (no
display needed), written as PNG under a temporary name and renamed."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .files import atomic_path


def class_matrix_png(matrix: np.ndarray, names: Sequence[str], path: str | os.PathLike, *, title: str,
                     xlabel: str, ylabel: str, cmap: str, limits: tuple[float, float], colorbar: str,
                     annotate: np.ndarray, white_above: float) -> Path:
    """PNG of a K x K matrix over classes. Up to 15 classes, the cells where `annotate` is true show
    their value, in white where its magnitude exceeds `white_above`. NaN cells stay blank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(names)
    fig, ax = plt.subplots(figsize=(1.8 + 0.75 * k, 1.4 + 0.7 * k))
    im = ax.imshow(matrix, cmap=cmap, vmin=limits[0], vmax=limits[1])
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel(xlabel), ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if k <= 15:
        for i, j in zip(*np.nonzero(annotate)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(matrix[i, j]) > white_above else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label=colorbar)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_curves(history: list[dict], path: str | os.PathLike) -> Path:
    """PNG of the training losses and the validation curves of a run's history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("total", "L_total"), ("seg", "L_seg"), ("psc", "L_psc"), ("ncs", "L_ncs")):
        ax1.plot(steps, [h.get(key, np.nan) for h in history], label=label, lw=1)
    ax1.set_xlabel("step"), ax1.set_title("training losses"), ax1.legend()
    for key, label, style in (("val_m1_miou", "mIoU, modality 1 alone", "-"), ("val_fused_miou", "mIoU, both", "-"),
                              ("val_spread", "shared-feature spread (0 = collapse)", "--")):
        pts = [(h["step"], h[key]) for h in history if key in h and h[key] is not None]
        if pts:
            ax2.plot(*zip(*pts), marker="o", ls=style, label=label)
    ax2.set_xlabel("step"), ax2.set_title("validation"), ax2.set_ylim(0, 1)
    if ax2.lines:
        ax2.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return path
