"""Accuracy and area when the sample's strata are not the map's classes (Stehman 2014, Int. J. Remote
Sens. 35:4923-4939): a sample stratified by a change map, used for the class areas and accuracy of
either date's map; or any map assessed with a sample drawn from another stratification.

Every quantity is a total of an indicator y_u over the population (or a ratio of two totals), and
stratified random sampling estimates a total as sum_h N_h * mean_h(y) (eq. 2-3). With strata h of
N_h pixels and n_h sample points:
    area share of reference class k      y_u = 1 if reference(u) = k                     (p_.k)
    overall accuracy                     y_u = 1 if map(u) = reference(u)
    user's accuracy of class k           R = Y / X, y_u = map k and reference k, x_u = map k
    producer's accuracy of class k       R = Y / X, y_u = map k and reference k, x_u = reference k
    cell (i, j) of the error matrix      y_u = map i and reference j                    (p_ij)
    V(total share) = (1/N^2) sum_h N_h^2 (1 - n_h/N_h) s2_yh / n_h                      (eq. 25)
    V(R) = (1/X^2) sum_h N_h^2 (1 - n_h/N_h) (s2_yh + R^2 s2_xh - 2 R s_xyh) / n_h      (eq. 28)
with s2 and s_xy the within-stratum sample variances and covariance. A stratum with fewer than two
points has no variance estimate: the standard errors it enters are None, as in `estimate`.
The numerical example of the paper (40 points, 4 strata) is reproduced in tests/core/test_accuracy.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StehmanEstimate:
    """Estimates for classes `names` (arrays ordered like them); standard errors None where a
    stratum with a sampled point has fewer than 2."""

    names: list[str]
    proportions: np.ndarray  # (K, K) error matrix in area proportions, rows map class, columns reference
    overall: float
    overall_se: float | None
    users: list[float | None]
    users_se: list[float | None]
    producers: list[float | None]
    producers_se: list[float | None]
    area_share: np.ndarray  # (K,) of each reference class
    area_share_se: list[float | None]
    total: float  # N, in the unit of the strata sizes


def stehman_estimate(strata, map_class, reference, stratum_sizes: dict, classes: list) -> StehmanEstimate:
    """Stehman's (2014) estimators from one row per sample point: its stratum, map class and
    reference class (any hashable labels), `stratum_sizes` {stratum: N_h} (pixels or area) and the
    `classes` to report, in order."""
    strata, mapped, ref = (np.asarray(v, dtype=object) for v in (strata, map_class, reference))
    if not (len(strata) == len(mapped) == len(ref)):
        raise ValueError("strata, map classes and reference classes must be as long as each other")
    unknown = sorted(set(strata.tolist()) - set(stratum_sizes), key=str)
    if unknown:
        raise ValueError(f"points in strata {unknown} whose sizes are not given")
    total = float(sum(stratum_sizes.values()))
    design = _Design(strata, stratum_sizes)
    K = len(classes)
    props = np.array([[design.share(_is(mapped, classes[i]) & _is(ref, classes[j])) for j in range(K)]
                      for i in range(K)])
    agree = mapped == ref
    overall = design.share(agree)
    shares, shares_se, users, users_se, producers, producers_se = [], [], [], [], [], []
    for k in classes:
        hit = _is(mapped, k) & _is(ref, k)
        shares.append(design.share(_is(ref, k)))
        shares_se.append(design.share_se(_is(ref, k)))
        for x, out, out_se in ((_is(mapped, k), users, users_se), (_is(ref, k), producers, producers_se)):
            r, se = design.ratio(hit, x)
            out.append(r)
            out_se.append(se)
    return StehmanEstimate(list(map(str, classes)), props, overall, design.share_se(agree), users, users_se,
                           producers, producers_se, np.array(shares), shares_se, total)


def _is(values: np.ndarray, label) -> np.ndarray:
    return np.array([v == label for v in values], bool)


class _Design:
    """Stratified random sampling: totals, ratios and their variances (Stehman 2014, eq. 2-3, 25, 28)."""

    def __init__(self, strata: np.ndarray, sizes: dict):
        self.groups = [(float(sizes[h]), np.flatnonzero(strata == h)) for h in sizes if np.any(strata == h)]
        self.N = float(sum(sizes.values()))

    def total(self, y: np.ndarray) -> float:
        return sum(N_h * float(y[idx].mean()) for N_h, idx in self.groups)

    def share(self, y: np.ndarray) -> float:
        return self.total(y.astype(float)) / self.N

    def _terms(self, f) -> float | None:
        """sum_h N_h^2 (1 - n_h/N_h) f(idx) / n_h, or None where a stratum has a single point."""
        out = 0.0
        for N_h, idx in self.groups:
            n = len(idx)
            if n < 2:
                return None
            out += N_h ** 2 * (1 - n / N_h) * f(idx) / n
        return out

    def share_se(self, y: np.ndarray) -> float | None:
        y = y.astype(float)
        v = self._terms(lambda idx: float(np.var(y[idx], ddof=1)))
        return None if v is None else float(np.sqrt(max(v, 0.0))) / self.N

    def ratio(self, y: np.ndarray, x: np.ndarray) -> tuple[float | None, float | None]:
        y, x = y.astype(float), x.astype(float)
        X = self.total(x)
        if X <= 0:
            return None, None
        R = self.total(y) / X

        def term(idx):
            yy, xx = y[idx], x[idx]
            return float(np.var(yy, ddof=1) + R ** 2 * np.var(xx, ddof=1) - 2 * R * np.cov(yy, xx, ddof=1)[0, 1])

        v = self._terms(term)
        return float(R), None if v is None else float(np.sqrt(max(v, 0.0)) / X)
