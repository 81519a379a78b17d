"""How often the 95 % intervals of class areas hold the true area (issue 43): a synthetic change map
of 1500 x 1500 pixels of 10 m whose true transitions are known, with rare transitions mapped in
small strata and omitted (hidden at 0.05-0.5 %) in the large unchanged strata.

Per repeat, a stratified random sample (`--n` points, proportional with at least `--minimum` a
stratum, drawn without replacement: multivariate hypergeometric counts) is estimated as `stars
assess` does: the transition areas by Olofsson et al. (2014, strata = mapped transitions) and each
date's class areas by Stehman (2014), both with the finite-population correction; the intervals are
    normal      estimate +/- 1.96 SE (the published one)
    bootstrap   stratified percentile bootstrap (rescaled), both ends
    shown       the bootstrap with one more point at each end: what `stars assess` shows
                beside the normal one (stars_core/accuracy/intervals.py)
Prints, per class, the true area, the share of repeats whose interval held it and the median width
(ha); the share of repeats whose report names the class as one whose normal interval is not to be
trusted (intervals.normal_doubts), and how often the normal interval held where it was not named.
Numpy only, single-threaded, about a minute. Never asserts. Usage:
    python bench/area_intervals.py [--reps 400] [--n 1500] [--minimum 50] [--draws 2000] [--seed 0]
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stars_core.accuracy.design import allocate  # noqa: E402
from stars_core.accuracy.estimate import estimate  # noqa: E402
from stars_core.accuracy.intervals import bootstrap_area_intervals, normal_doubts  # noqa: E402
from stars_core.accuracy.stehman import stehman_estimate  # noqa: E402

HA = 0.01  # a 10 m pixel
CLASSES = ["forest", "farmland", "water", "urban"]
# (from, to) of each transition; the first four are the unchanged classes
TRANSITIONS = [(0, 0), (1, 1), (2, 2), (3, 3), (0, 1), (1, 3), (0, 2), (1, 0)]
# mapped strata: pixels, and the true transitions of their pixels (shares, in the order above)
STRATA = {
    "forest": (1_200_000, [0.990, 0.004, 0, 0, 0.005, 0, 0.0005, 0.0005]),
    "farmland": (700_000, [0.020, 0.970, 0, 0.002, 0, 0.003, 0, 0.005]),
    "water": (150_000, [0.010, 0, 0.989, 0, 0, 0, 0.001, 0]),
    "urban": (100_000, [0, 0.020, 0, 0.979, 0, 0.001, 0, 0]),
    "forest -> farmland": (60_000, [0.15, 0.05, 0, 0, 0.80, 0, 0, 0]),
    "farmland -> urban": (15_000, [0, 0.25, 0, 0.05, 0, 0.70, 0, 0]),
    "forest -> water": (3_000, [0.30, 0, 0.10, 0, 0, 0, 0.60, 0]),
    "farmland -> forest": (20_000, [0.20, 0.30, 0, 0, 0, 0, 0, 0.50]),
}


def population() -> tuple[np.ndarray, np.ndarray]:
    """(H,) pixels of each stratum and (H, T) true pixels of each transition in it."""
    pixels = np.array([p for p, _ in STRATA.values()])
    truth = np.zeros((len(STRATA), len(TRANSITIONS)), np.int64)
    for h, (p, shares) in enumerate(STRATA.values()):
        s = np.asarray(shares) / np.sum(shares)
        truth[h] = np.floor(p * s).astype(np.int64)
        truth[h, int(np.argmax(s))] += p - truth[h].sum()
    return pixels, truth


def date_counts(x: np.ndarray, side: int) -> np.ndarray:
    """(H, C) points per stratum and class at one date from (H, T) points per transition."""
    out = np.zeros((x.shape[0], len(CLASSES)), x.dtype)
    for t, ft in enumerate(TRANSITIONS):
        out[:, ft[side]] += x[:, t]
    return out


def normal_date(x: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stehman's estimator from counts (strata labels per point rebuilt from the count table)."""
    strata, ref = [], []
    for h in range(x.shape[0]):
        for c in range(x.shape[1]):
            strata += [h] * int(x[h, c])
            ref += [c] * int(x[h, c])
    e = stehman_estimate(strata, ref, ref, dict(enumerate(pixels.tolist())), list(range(x.shape[1])))
    return e.area_share * pixels.sum() * HA, np.array(e.area_share_se, float) * pixels.sum() * HA


def run(args) -> None:
    pixels, truth = population()
    points = np.array(allocate(args.n, pixels.tolist(), "proportional", args.minimum))
    names = [f"{CLASSES[a]} -> {CLASSES[b]}" if a != b else CLASSES[a] for a, b in TRANSITIONS]
    targets = {"transitions": (names, truth.sum(axis=0) * HA),
               "date A": (CLASSES, date_counts(truth, 0).sum(axis=0) * HA),
               "date B": (CLASSES, date_counts(truth, 1).sum(axis=0) * HA)}
    kinds = ("normal", "bootstrap", "shown")
    hits = {k: {m: np.zeros(len(v[0])) for m in kinds} for k, v in targets.items()}
    widths = {k: {m: [] for m in kinds} for k in targets}
    flagged = {k: np.zeros(len(v[0])) for k, v in targets.items()}  # the report's note named the class
    trusted = {k: np.zeros(len(v[0])) for k, v in targets.items()}  # normal held it, not named
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for r in range(args.reps):
        x = np.stack([rng.multivariate_hypergeometric(truth[h], int(points[h])) for h in range(len(pixels))])
        for key in targets:
            if key == "transitions":
                e = estimate(x, pixels, area=pixels * HA)
                est, se = e.area, np.array(e.area_se, float)
                counts, own = x, np.eye(len(TRANSITIONS), dtype=bool)  # stratum h is mapped as transition h
            else:
                side = 0 if key == "date A" else 1
                counts = date_counts(x, side)
                est, se = normal_date(counts, pixels)
                own = date_counts(np.eye(len(TRANSITIONS), dtype=np.int64), side) > 0
            true = targets[key][1]
            limits = {"normal": np.column_stack([est - 1.96 * se, est + 1.96 * se])}
            for m, more in (("bootstrap", False), ("shown", True)):
                limits[m] = bootstrap_area_intervals(counts, pixels, pixels * HA, draws=args.draws, seed=r,
                                                     one_more=more)
            doubt = np.array([d is not None for d in normal_doubts(counts, pixels, own)])
            flagged[key] += doubt
            held = (limits["normal"][:, 0] <= true + 1e-9) & (true - 1e-9 <= limits["normal"][:, 1])
            trusted[key] += held & ~doubt
            for m in kinds:
                lo, hi = limits[m][:, 0], limits[m][:, 1]
                hits[key][m] += (lo <= true + 1e-9) & (true - 1e-9 <= hi)
                widths[key][m].append(hi - lo)
    seconds = time.perf_counter() - start
    print(f"{args.reps} samples of {int(points.sum())} points (at least {args.minimum} a stratum), {args.draws} "
          f"bootstrap draws; {seconds:.0f} s; numpy {np.__version__}, {platform.processor() or platform.machine()}")
    print(f"points per stratum: " + ", ".join(f"{n} {p}" for n, p in zip(STRATA, points)))
    for key, (labels, true) in targets.items():
        print(f"\n{key}: coverage of the 95 % interval (median width, ha)")
        print(f"{'class':<22} {'true ha':>10} " + " ".join(f"{m:>20}" for m in kinds) + f" {'named':>6} "
              f"{'normal held, not named':>23}")
        for k, label in enumerate(labels):
            cells = [f"{hits[key][m][k] / args.reps:>8.3f} ({np.median(np.array(widths[key][m])[:, k]):>9,.1f})"
                     for m in kinds]
            unnamed = args.reps - flagged[key][k]
            held = "-" if unnamed == 0 else f"{trusted[key][k] / unnamed:.3f} of {int(unnamed)}"
            print(f"{label:<22} {true[k]:>10,.1f} " + " ".join(f"{c:>20}" for c in cells)
                  + f" {flagged[key][k] / args.reps:>6.2f} {held:>23}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=400)
    p.add_argument("--n", type=int, default=1500)
    p.add_argument("--minimum", type=int, default=50)
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    run(p.parse_args(argv))


if __name__ == "__main__":
    main()
