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
