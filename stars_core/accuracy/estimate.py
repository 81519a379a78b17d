"""Stratified estimators of accuracy and area (Olofsson et al. 2014, section 4 and the worked
example of section 5), the strata being the map classes.

With W_i the mapped area share of map class i, n_ij the sample points of map class i whose
reference class is j, n_i. the points of stratum i and f_i = n_i. / N_i its sampling fraction (N_i
its pixels):
    p_ij = W_i n_ij / n_i.                          the error matrix in estimated area proportions
    overall accuracy O = sum_j p_jj                 V(O) = sum_i (1 - f_i) W_i^2 U_i (1 - U_i) / (n_i. - 1)
    user's accuracy  U_i = n_ii / n_i.              V(U_i) = (1 - f_i) U_i (1 - U_i) / (n_i. - 1)
    producer's accuracy P_j = p_jj / p_.j           V(P_j): the paper's eq. for the ratio estimator
    area proportion  p_.k = sum_i p_ik              S(p_.k) = sqrt(sum_i (1 - f_i) (W_i p_ik - p_ik^2) / (n_i. - 1))
    area             A_k = A p_.k                   S(A_k) = A S(p_.k)
95 % intervals are +/- 1.96 standard errors.
The finite-population correction (1 - f_i) is the one choice for both estimators of this package
(here and `stehman`, which is Stehman's 2014 eq. 25 and 28 as printed): points are drawn without
replacement from the stratum's pixels, so a stratum sampled whole (a rare transition of 12 pixels
with 12 points: n_i. = N_i) adds no variance, and one sampled at a large fraction adds less. Olofsson
et al. print their formulas without it because their f_i are about 1/2000; there the correction
changes their intervals by less than 0.01 % (tests/core/test_accuracy.py reproduces the worked
example). It needs the strata's sizes in pixels, never in an area: `estimate` takes the pixel
counts, and the areas (for the weights W_i and the areas A_k) separately, and refuses sizes that
cannot be pixel counts. The bootstrap interval of the areas beside the normal one: intervals.py.
A stratum with fewer than 2 labelled points has no variance estimate (unless it is sampled whole):
every standard error it enters is None (not invented), and the estimate says why.
A stratum with no labelled point at all is refused: its share of the map would be missing from every
estimate, so they would be biased (`estimate` raises ValueError, `assess` names the class).
Where a stratum's sample holds no error (U_i = 1) or nothing right (U_i = 0), the formula above gives
a zero-width interval that says nothing about the true accuracy; `users_wilson` gives Wilson's score
interval for U_i beside it (Wilson 1927; Agresti and Coull 1998), and a note says which classes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Z95 = 1.96


@dataclass
class Estimate:
    """Estimates for classes `names`, all arrays ordered like them. Standard errors are None where a
    stratum has fewer than 2 points (and is not sampled whole); `ci95` is 1.96 standard errors."""

    names: list[str]
    counts: np.ndarray  # (K, K) sample points, rows map class, columns reference class
    weights: np.ndarray  # (K,) mapped area share of each map class
    total_area: float  # mapped area, in the unit of the `area` given to `estimate` (pixels if none)
    proportions: np.ndarray  # (K, K) error matrix in estimated area proportions
    overall: float
    overall_se: float | None
    users: list[float | None]
    users_se: list[float | None]
    producers: list[float | None]
    producers_se: list[float | None]
    area_share: np.ndarray  # (K,) estimated area proportion of each reference class
    area_share_se: list[float | None]
    notes: list[str] = field(default_factory=list)
    users_wilson: list[tuple[float, float] | None] = field(default_factory=list)  # 95 % score interval of U_i
    # set by `assess.assess`: (K, 2) area shares, the bootstrap 95 % interval of intervals.py, and why
    # each class's normal interval is not to be trusted (None where nothing says so)
    area_share_boot95: np.ndarray | None = None
    normal_doubt: list[str | None] = field(default_factory=list)

    @property
    def mapped_area(self) -> np.ndarray:
        return self.weights * self.total_area

    @property
    def area(self) -> np.ndarray:
        return self.area_share * self.total_area

    @property
    def area_se(self) -> list[float | None]:
        return [None if s is None else s * self.total_area for s in self.area_share_se]

    @staticmethod
    def ci95(se: float | None) -> float | None:
        return None if se is None else Z95 * se


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float] | None:
    """Wilson's score interval for a proportion: informative at 0 and n successes, where the normal
    approximation collapses to a single point. None for n = 0."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def pixel_counts(pixels, points, names: list[str]) -> np.ndarray:
    """The strata's sizes as pixel counts (population units) for the finite-population correction;
    ValueError where they cannot be: not whole numbers, or fewer pixels than sample points in a
    stratum (an area given where pixels belong, e.g. hectares of 10 m pixels, is 100 times too small)."""
    N = np.asarray(pixels, dtype=np.float64)
    n = np.asarray(points, dtype=np.float64)
    odd = [names[i] for i in np.flatnonzero(N != np.round(N))]
    if odd:
        raise ValueError(f"stratum sizes must be pixel counts (whole numbers), got {N[names.index(odd[0])]!r} for "
                         f"{odd[0]}: give the pixels here and the areas separately")
    over = [names[i] for i in np.flatnonzero(n > N)]
    if over:
        i = names.index(over[0])
        raise ValueError(f"stratum {over[0]} has {int(n[i])} sample points but only {N[i]:g} pixels: its size must "
                         f"be its pixel count, not its area")
    return N


def estimate(counts, pixels, names: list[str] | None = None, *, area=None) -> Estimate:
    """The estimates from the sample `counts` (K x K, rows map class, columns reference class), the
    pixels of each map class (the population sizes N_i of the finite-population correction) and, if
    the areas are wanted in another unit than pixels, the mapped `area` of each map class (ha, say)."""
    n = np.asarray(counts, dtype=np.float64)
    K = n.shape[0]
    names = list(names) if names is not None else [str(i) for i in range(K)]
    mapped = np.asarray(pixels if area is None else area, dtype=np.float64)
    if n.shape != (K, K) or mapped.shape != (K,) or np.shape(pixels) != (K,):
        raise ValueError(f"counts must be K x K and pixels and areas K long, got {n.shape}, {np.shape(pixels)} "
                         f"and {mapped.shape}")
    rows = n.sum(axis=1)  # n_i.
    N = pixel_counts(pixels, rows, names)
    with np.errstate(invalid="ignore", divide="ignore"):
        fpc = np.where(N > 0, 1 - rows / N, 1.0)  # 1 - f_i: 0 for a stratum sampled whole
    total = float(mapped.sum())
    W = mapped / total
    notes = []
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(rows[:, None] > 0, n / rows[:, None], 0.0)  # n_ij / n_i.
    p = W[:, None] * share
    empty = [names[i] for i in np.flatnonzero((rows == 0) & (W > 0))]
    if empty:
        raise ValueError(f"map class(es) {', '.join(empty)} have no labelled point: the estimates would leave "
                         f"out {100 * float(W[(rows == 0) & (W > 0)].sum()):.1f} % of the map and be biased")
    defined = (rows >= 2) | ((rows > 0) & (fpc == 0))  # a variance needs 2 points, or the whole stratum
    for i in np.flatnonzero(~defined & (W > 0)):
        notes.append(f"map class {names[i]} has {int(rows[i])} labelled point(s): the standard errors it "
                     f"enters (overall accuracy, its user's accuracy, every area and producer's accuracy) "
                     f"cannot be computed; label at least 2 points of it")
    strata = W > 0
    all_defined = bool(np.all(defined[strata]))
    dof = np.maximum(rows - 1, 1)

    users = [float(share[i, i]) if rows[i] > 0 else None for i in range(K)]
    users_se = [float(np.sqrt(fpc[i] * share[i, i] * (1 - share[i, i]) / dof[i])) if defined[i] else None
                for i in range(K)]
    wilson = [wilson_interval(n[i, i], rows[i]) for i in range(K)]
    flat = [f"{names[i]} ({int(rows[i])} points, {'none' if share[i, i] == 0 else 'all'} right: Wilson 95 % "
            f"{wilson[i][0]:.2f}-{wilson[i][1]:.2f})" for i in range(K) if defined[i] and share[i, i] in (0.0, 1.0)]
    if flat:
        notes.append("user's accuracy with a zero-width interval is not informative (no sampled error, or no "
                     "sampled agreement, in the stratum): " + "; ".join(flat))
    overall = float(np.trace(p))
    overall_se = None
    if all_defined:
        u = np.diag(share)
        overall_se = float(np.sqrt(np.sum((fpc * W ** 2 * u * (1 - u) / dof)[strata])))

    area_share = p.sum(axis=0)  # p_.k
    area_share_se: list[float | None] = []
    for k in range(K):
        if not all_defined:
            area_share_se.append(None)
            continue
        terms = fpc * (W * p[:, k] - p[:, k] ** 2) / dof
        area_share_se.append(float(np.sqrt(max(terms[strata].sum(), 0.0))))

    flat_area = [names[k] for k in range(K) if area_share_se[k] == 0 and (area_share[k] > 0 or W[k] > 0)]
    if flat_area:
        notes.append("area intervals of zero width are not informative: no sampled point of any stratum was "
                     f"uncertain about {', '.join(flat_area)} (every stratum's points all agreed, or all disagreed, "
                     f"on it); more points in the large strata would show the omission a zero width hides")
    producers, producers_se = _producers(n, p, share, mapped, fpc, all_defined)
    return Estimate(names, n.astype(np.int64), W, total, p, overall, overall_se, users, users_se, producers,
                    producers_se, area_share, area_share_se, notes, wilson)


def _producers(n: np.ndarray, p: np.ndarray, share: np.ndarray, Ni: np.ndarray, fpc: np.ndarray,
               with_se: bool) -> tuple[list[float | None], list[float | None]]:
    """Producer's accuracies P_j = p_jj / p_.j and their standard errors (Olofsson et al. 2014, eq. 7,
    each stratum's term times its 1 - f_i); Ni the mapped sizes (area or pixels: they cancel)."""
    K = n.shape[0]
    rows = n.sum(axis=1)
    dof = np.maximum(rows - 1, 1)
    area_share = p.sum(axis=0)
    producers: list[float | None] = []
    producers_se: list[float | None] = []
    for j in range(K):
        if area_share[j] <= 0:
            producers.append(None)
            producers_se.append(None)
            continue
        P = float(p[j, j] / area_share[j])
        producers.append(P)
        if not with_se:
            producers_se.append(None)
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            N_hat = float(np.sum(np.where(rows > 0, Ni / rows * n[:, j], 0.0)))  # estimated size of reference class j
        U = share[j, j]
        first = fpc[j] * Ni[j] ** 2 * (1 - P) ** 2 * U * (1 - U) / dof[j] if rows[j] > 1 else 0.0
        others = [fpc[i] * Ni[i] ** 2 * share[i, j] * (1 - share[i, j]) / dof[i]
                  for i in range(K) if i != j and rows[i] > 1]
        producers_se.append(float(np.sqrt((first + P ** 2 * sum(others)) / N_hat ** 2)))
    return producers, producers_se
