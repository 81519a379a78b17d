"""Accuracy and area when the sample's strata are not the map's classes (Stehman 2014, Int. J. Remote
Sens. 35:4923-4939): a sample stratified by a change map, used for the class areas and accuracy of
either date's map; or any map assessed with a sample drawn from another stratification.

Every quantity is a total of an indicator y_u over the population (or a ratio of two totals), and
stratified random sampling estimates a total as sum_h N_h * mean_h(y) (eq. 2-3). With strata h of
N_h pixels and n_h sample points (the sums below weigh by N_h/N; given the strata's areas, by their
area shares instead, the correction 1 - n_h/N_h staying in pixels):
    area share of reference class k      y_u = 1 if reference(u) = k                     (p_.k)
    overall accuracy                     y_u = 1 if map(u) = reference(u)
    user's accuracy of class k           R = Y / X, y_u = map k and reference k, x_u = map k
    producer's accuracy of class k       R = Y / X, y_u = map k and reference k, x_u = reference k
    cell (i, j) of the error matrix      y_u = map i and reference j                    (p_ij)
    V(total share) = (1/N^2) sum_h N_h^2 (1 - n_h/N_h) s2_yh / n_h                      (eq. 25)
    V(R) = (1/X^2) sum_h N_h^2 (1 - n_h/N_h) (s2_yh + R^2 s2_xh - 2 R s_xyh) / n_h      (eq. 28)
with s2 and s_xy the within-stratum sample variances and covariance. The finite-population correction
(1 - n_h/N_h) is kept, as in `estimate` (the package's one choice, explained there): a stratum
sampled whole adds no variance. It is why the sizes must be pixel counts: `stehman_estimate` takes
them apart from the areas and refuses sizes that cannot be pixels (an area in hectares of 10 m
pixels would make n_h/N_h a hundred times too large and the intervals too narrow). A stratum with
fewer than two points (and not sampled whole) has no variance estimate: the standard errors it
enters are None, as in `estimate`.
The numerical example of the paper (40 points, 4 strata) is reproduced in tests/core/test_accuracy.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .estimate import pixel_counts


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
    total: float  # N, in the unit of the strata areas (pixels where none were given)
    area_share_boot95: np.ndarray | None = None  # (K, 2) set by `assess`, as in `Estimate`
    normal_doubt: list[str | None] | None = None


def stehman_estimate(strata, map_class, reference, stratum_pixels: dict, classes: list,
                     stratum_area: dict | None = None) -> StehmanEstimate:
    """Stehman's (2014) estimators from one row per sample point: its stratum, map class and
    reference class (any hashable labels), `stratum_pixels` {stratum: N_h} (pixel counts: the
    population sizes), the `classes` to report, in order, and, to weigh the strata by area rather than
    by pixels, `stratum_area` {stratum: area}."""
    strata, mapped, ref = (np.asarray(v, dtype=object) for v in (strata, map_class, reference))
    if not (len(strata) == len(mapped) == len(ref)):
        raise ValueError("strata, map classes and reference classes must be as long as each other")
    unknown = sorted(set(strata.tolist()) - set(stratum_pixels), key=str)
    if unknown:
        raise ValueError(f"points in strata {unknown} whose sizes are not given")
    keys = list(stratum_pixels)
    pixel_counts([stratum_pixels[h] for h in keys], [int(np.sum(strata == h)) for h in keys], list(map(str, keys)))
    weights = stratum_pixels if stratum_area is None else stratum_area
    total = float(sum(weights[h] for h in keys))
    design = _Design(strata, stratum_pixels, weights)
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
    """Stratified random sampling: totals, ratios and their variances (Stehman 2014, eq. 2-3, 25, 28),
    strata weighed by `weights` (pixels or areas), corrected for the sampled fraction of their `pixels`."""

    def __init__(self, strata: np.ndarray, pixels: dict, weights: dict):
        self.groups = [(float(weights[h]), float(pixels[h]), np.flatnonzero(strata == h)) for h in pixels
                       if np.any(strata == h)]
        self.N = float(sum(weights[h] for h in pixels))

    def total(self, y: np.ndarray) -> float:
        return sum(A_h * float(y[idx].mean()) for A_h, _, idx in self.groups)

    def share(self, y: np.ndarray) -> float:
        return self.total(y.astype(float)) / self.N

    def _terms(self, f) -> float | None:
        """sum_h A_h^2 (1 - n_h/N_h) f(idx) / n_h, or None where a stratum has a single point (and
        more than one pixel); A_h = N_h when the strata are weighed by pixels."""
        out = 0.0
        for A_h, N_h, idx in self.groups:
            n = len(idx)
            if n == N_h:  # sampled whole: no variance
                continue
            if n < 2:
                return None
            out += A_h ** 2 * (1 - n / N_h) * f(idx) / n
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
