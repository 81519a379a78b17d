"""A second 95 % interval for class areas, beside the normal one (estimate +/- 1.96 SE): a stratified
bootstrap that allows, at each end, for one more point than the sample holds.

Why: a class area is sum_h A_h x_hk / n_h (x_hk of the n_h points of stratum h show class k). Where
a rare class hides in a large stratum (omitted change among the unchanged pixels), each point of it
found there weighs A_h / n_h, so the estimate is a handful of heavy counts: skewed, and its standard
error comes out small exactly when no such point was drawn. Likewise a stratum whose points all
agree shows no variance, whatever its true error. The normal interval then misses the true area far
more often than 5 % of the time (bench/area_intervals.py). No resampling of the points drawn can
show a point that was not drawn, so, as the exact binomial limits do (Clopper and Pearson 1934:
one more success at the upper limit, one more failure at the lower) and as Fay and Feuer (1997) do
for weighted sums of counts (one more event of the largest weight):
    spread      the points of each stratum resampled (multinomial, n_h draws), each stratum's deviation
                from its own estimate scaled by sqrt((1 - n_h/N_h) n_h / (n_h - 1)) so that the bootstrap
                variance is the estimator's, finite-population correction included (the rescaled
                bootstrap of Rao and Wu 1988); a stratum sampled whole does not vary;
    upper end   97.5th percentile with one more point of class k in the stratum where an unseen
                pixel's point weighs most, A_h (1 - n_h/N_h) / n_h;
    lower end   2.5th percentile with one more point of another class in each stratum whose points
                were all of class k (else in the one where a point of class k weighs most).
The interval therefore says how much of the class the sample cannot rule out, however few points of
it were found outside the strata it makes up; where a class's area is well measured, one point more
changes little. Seeded: the same sample gives the same interval. `normal_doubts` says, per class,
when the normal interval is not to be trusted.
"""
from __future__ import annotations

import numpy as np

DRAWS = 2000


def bootstrap_area_intervals(counts, pixels, area, draws: int = DRAWS, seed: int = 0,
                             one_more: bool = True) -> np.ndarray:
    """(K, 2) lower and upper 95 % limits of each class's area, in the unit of `area`, from `counts`
    (H x K: points of stratum h whose reference is class k), the strata's `pixels` (N_h) and `area`
    (A_h). Strata without points are left out (their area is missing from every estimate anyway).
    `one_more=False`: the plain percentile bootstrap at both ends (bench/area_intervals.py compares)."""
    x = np.asarray(counts, dtype=np.float64)
    N = np.asarray(pixels, dtype=np.float64)
    A = np.asarray(area, dtype=np.float64)
    keep = x.sum(axis=1) > 0
    x, N, A = x[keep], N[keep], A[keep]
    n = x.sum(axis=1)
    H, K = x.shape
    rng = np.random.default_rng(seed)
    parts = np.stack([_stratum(A[h], N[h], n[h], x[h] / n[h], rng.multinomial(int(n[h]), x[h] / n[h], size=draws))
                      for h in range(H)])  # (H, B, K): each stratum's part of the bootstrap totals
    totals = parts.sum(axis=0)  # (B, K)
    weight = A * np.clip(1 - n / N, 0.0, 1.0) / n  # what an unseen pixel's point weighs
    if not one_more or not np.any(weight > 0):
        return np.percentile(totals, [2.5, 97.5], axis=0).T
    # the lower and upper ends' added points (see the module docstring): (H, K) where they go
    seen = np.where(x > 0, weight[:, None], -1.0)  # (H, K)
    low = (x == n[:, None]) & (weight[:, None] > 0)
    first = np.argmax(seen, axis=0)
    fill = ~low.any(axis=0) & (seen.max(axis=0) > 0)
    low[first[fill], np.flatnonzero(fill)] = True
    up = np.zeros_like(low)
    up[int(np.argmax(weight)), :] = True
    ends = []
    for where, extra, q in ((low, 0.0, 2.5), (up, 1.0, 97.5)):
        moved = totals.copy()
        for h in np.flatnonzero(where.any(axis=1)):
            m = n[h] + 1
            p = (x[h] + extra) / m
            added = _stratum(A[h], N[h], m, p, rng.binomial(int(m), p, size=(draws, K)))
            moved += np.where(where[h], added - parts[h], 0.0)
        ends.append(np.percentile(moved, q, axis=0))
    lower = np.where(low.any(axis=0), ends[0], np.percentile(totals, 2.5, axis=0))
    return np.column_stack([np.minimum(lower, ends[1]), ends[1]])


def _stratum(A, N, n, p, star):
    """A stratum's part of bootstrap totals, A_h (p + c (p* - p)) with p* = star / n, c^2 = (1 - n/N)
    n / (n - 1) (0 for a stratum sampled whole or of one point): the bootstrap variance is then the
    estimator's, finite-population correction included."""
    fpc = np.clip(1 - n / N, 0.0, 1.0)
    c = np.sqrt(np.where(n > 1, fpc * n / np.maximum(n - 1, 1), 0.0))
    return A * (p + c * (star / n - p))


FEW = 5  # points of a class found outside the strata it makes up: below this, omission there can hide


def normal_doubts(counts, pixels, own=None) -> list[str | None]:
    """Why the normal interval of each class's area is not to be trusted, or None: fewer than `FEW`
    points of the class outside the strata it makes up (its area there rests on a handful of heavy
    points, or on none: omission there is unseen), or a stratum (not sampled whole) whose points were
    all of it (no variance shows there: its commission is unseen). (H x K) counts as in
    `bootstrap_area_intervals`; `own` (H x K, True where stratum h is mapped as class k), else the
    strata where the class is the majority of the points."""
    x = np.asarray(counts, dtype=np.float64)
    N = np.asarray(pixels, dtype=np.float64)
    n = x.sum(axis=1)
    own = x >= n[:, None] / 2 if own is None else np.asarray(own, bool)
    use = (n > 0) & (n < N)  # strata sampled in part
    out: list[str | None] = []
    for k in range(x.shape[1]):
        if not np.any(x[use, k] > 0):  # never seen, or only in strata sampled whole
            out.append(None)
            continue
        outside = int(x[use & ~own[:, k], k].sum())
        unanimous = bool(np.any(use & (x[:, k] == n) & (n >= 2)))
        why = []
        if outside < FEW:
            why.append(f"{outside} point(s) of it outside the strata it makes up")
        if unanimous:
            why.append("every point of a stratum of it agreed")
        out.append(" and ".join(why) or None)
    return out
