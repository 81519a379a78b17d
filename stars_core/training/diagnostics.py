"""What training shows about the shared feature space, measured on the validation chips.

`AlignmentProbe` accumulates, over the batches of one validation pass, the shared features of the
last aligned encoder stage (labels resized to that stage by nearest neighbour):

- the cross-modal class similarity matrix (the paper's Figure 10): S[i, j] is the cosine between the
  mean unit-normalised feature of class i in modality 1 and that of class j in modality 2. A diagonal
  that stands out means both modalities put each class at the same place of the shared space.
- a feature-collapse indicator (SimSiam, section 4.1): the mean per-channel standard deviation of the
  unit-normalised modality-1 features, times sqrt(channels). About 1 when features spread over the
  sphere, 0 when every pixel maps to the same vector.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..files import atomic_path
from .losses import flat_pixels, stage_labels
from ..models import PairOutput
from ..plots import class_matrix_png, plot_curves


class AlignmentProbe:
    """Class means and channel moments of the shared features, summed over validation batches."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.sums: torch.Tensor | None = None  # (2, K, C) float64
        self.counts = torch.zeros(num_classes, dtype=torch.float64)
        self.moments: torch.Tensor | None = None  # (2, C): sum and sum of squares, modality 1
        self.pixels = 0

    def add(self, out: PairOutput, target: torch.Tensor) -> None:
        """One batch: `out` from `model(x1, x2)` (no-op for baselines without shared features)."""
        if not out.shared_m1:
            return
        f1, f2 = (F.normalize(feats[-1].detach().float(), dim=1) for feats in (out.shared_m1, out.shared_m2))
        p1, p2 = flat_pixels(f1).double().cpu(), flat_pixels(f2).double().cpu()  # (B*h*w, C)
        labels = stage_labels(target, f1.shape[-2:]).reshape(-1).cpu()
        keep = labels < self.num_classes
        if self.sums is None:
            self.sums = torch.zeros(2, self.num_classes, p1.shape[1], dtype=torch.float64)
            self.moments = torch.zeros(2, p1.shape[1], dtype=torch.float64)
        self.sums[0].index_add_(0, labels[keep], p1[keep])
        self.sums[1].index_add_(0, labels[keep], p2[keep])
        self.counts += torch.bincount(labels[keep], minlength=self.num_classes).double()
        self.moments[0] += p1.sum(0)
        self.moments[1] += (p1 * p1).sum(0)
        self.pixels += len(p1)

    def similarity(self) -> np.ndarray:
        """(K, K) cosine similarities of the class means; NaN rows/columns for classes not seen."""
        k = self.num_classes
        if self.sums is None:
            return np.full((k, k), np.nan)
        means = F.normalize(self.sums / self.counts.clamp(min=1)[None, :, None], dim=2)
        sim = (means[0] @ means[1].T).numpy()
        absent = self.counts.numpy() == 0
        sim[absent, :] = np.nan
        sim[:, absent] = np.nan
        return sim

    def spread(self) -> float:
        """Collapse indicator: ~1 for spread features, 0 for collapsed ones (NaN before any batch)."""
        if self.moments is None or self.pixels < 2:
            return float("nan")
        mean = self.moments[0] / self.pixels
        var = (self.moments[1] / self.pixels - mean * mean).clamp(min=0)
        return float(var.sqrt().mean() * math.sqrt(len(mean)))

    def summary(self) -> dict:
        """Plain numbers: the matrix, its mean diagonal and off-diagonal, their gap, the spread."""
        sim = self.similarity()
        valid = ~np.isnan(np.diag(sim))
        diag = float(np.mean(np.diag(sim)[valid])) if valid.any() else float("nan")
        off = sim[np.ix_(valid, valid)][~np.eye(int(valid.sum()), dtype=bool)]
        off_mean = float(np.mean(off)) if off.size else float("nan")
        return {
            "similarity": [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in sim],
            "diagonal": diag, "off_diagonal": off_mean, "gap": diag - off_mean, "spread": self.spread(),
        }


def plot_similarity(summary: dict, names: Sequence[str], title: str, path: str | os.PathLike,
                    modalities: tuple[str, str] = ("SAR", "optical")) -> Path:
    """PNG of one cross-modal class similarity matrix (rows modality 1, columns modality 2)."""
    sim = np.array([[np.nan if v is None else v for v in row] for row in summary["similarity"]], np.float64)
    return class_matrix_png(
        sim, names, path, title=f"{title}\ndiagonal {summary['diagonal']:.2f}, off-diagonal "
        f"{summary['off_diagonal']:.2f}, spread {summary['spread']:.2f}", xlabel=f"class mean, {modalities[1]}",
        ylabel=f"class mean, {modalities[0]}", cmap="RdBu_r", limits=(-1, 1), colorbar="cosine similarity",
        annotate=~np.isnan(sim), white_above=0.6)


class Diagnostics:
    """The PNGs training draws into a folder when asked (validation chips, modality-1 branch)."""

    def __init__(self, folder: Path, names: Sequence[str], modalities: tuple[str, str], steps: set[int],
                 resuming: bool):
        self.folder, self.names, self.modalities, self.steps = folder, list(names), modalities, steps
        folder.mkdir(parents=True, exist_ok=True)
        saved = folder / "similarity.json"
        self.matrices: dict[str, dict] = {}
        if resuming and saved.exists():  # a resumed run adds to the matrices already drawn
            self.matrices = json.loads(saved.read_text())["steps"]
        elif not resuming:  # a new run: no matrix of an earlier run may stay beside this one's
            for old in [saved, *folder.glob("similarity_*.png")]:
                old.unlink(missing_ok=True)

    def write(self, step: int, metrics: dict, alignment: dict | None, history: list[dict], final: bool) -> None:
        from ..evaluate import plot_confusion

        plot_confusion({**metrics, "class_names": self.names}, self.folder / "confusion.png")
        if len(history) > 1:
            plot_curves(history, self.folder / "curves.png")
        if alignment is None or not (step == 0 or final or step in self.steps):
            return
        label = "init" if step == 0 else f"step{step:06d}"
        title = "before training" if step == 0 else f"step {step}"
        plot_similarity(alignment, self.names, f"cross-modal class similarity, {title}",
                        self.folder / f"similarity_{label}.png", self.modalities)
        # NaN (no class present twice, say) is null in the JSON: strict readers refuse NaN tokens
        self.matrices[str(step)] = {k: None if isinstance(v, float) and math.isnan(v) else v
                                    for k, v in alignment.items()}
        with atomic_path(self.folder / "similarity.json") as tmp:
            Path(tmp).write_text(json.dumps({"classes": self.names, "steps": self.matrices}, indent=1))


def write_log(history: list[dict], out: Path) -> tuple[Path, Path | None]:
    """The CSV of every logged term beside the model file, and a PNG of the curves."""
    csv_path = out.with_name(out.stem + ".log.csv")
    keys = list(dict.fromkeys(k for row in history for k in row))
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    try:
        png = plot_curves(history, out.with_name(out.stem + ".curves.png"))
    except ImportError:
        png = None
    return csv_path, png
