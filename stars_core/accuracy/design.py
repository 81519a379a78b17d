"""How many points to sample and how to share them among the map classes (strata).

`sample_size` is Olofsson et al. (2014) eq. 13 (after Cochran 1977, eq. 5.25): for a target standard
error S(O) of overall accuracy and expected user's accuracies U_i,
    n = (sum_i W_i S_i)^2 / (S(O)^2 + (1/N) sum_i W_i S_i^2),   S_i = sqrt(U_i (1 - U_i)),
with W_i the mapped share of class i and N the number of pixels. `allocate` shares n out:
proportional to the mapped shares with a minimum per class (the paper's advice: rare classes get
enough points for their user's accuracy), equal, or as given.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError

ALLOCATIONS = ("proportional", "equal")


def sample_size(weights: Sequence[float], users: Sequence[float], target_se: float,
                population: float | None = None) -> int:
    """Total sample size for a target standard error of overall accuracy (eq. 13)."""
    W = np.asarray(weights, dtype=np.float64)
    U = np.asarray(users, dtype=np.float64)
    if W.shape != U.shape:
        raise InputError(f"give one expected user's accuracy per class ({len(W)}), got {len(U)}")
    if not 0 < target_se < 1:
        raise InputError(f"the target standard error of overall accuracy must be between 0 and 1 (e.g. 0.01), "
                         f"got {target_se}")
    if np.any((U <= 0) | (U >= 1)):
        raise InputError(f"expected user's accuracies must be between 0 and 1 (exclusive), got {list(U)}")
    S = np.sqrt(U * (1 - U))
    finite = 0.0 if not population else float(np.sum(W * S ** 2)) / population
    return int(math.ceil(float(np.sum(W * S)) ** 2 / (target_se ** 2 + finite)))


def allocate(total: int, pixels: Sequence[int], how: str = "proportional", minimum: int = 50,
             given: Mapping[int, int] | None = None) -> list[int]:
    """Points per stratum (in the order of `pixels`), never more than a stratum has pixels.
    proportional: every class gets at least `minimum`, the rest of `total` goes to the others in
    proportion to their mapped share; equal: total / K each; `given`: {stratum index: points}."""
    pixels = [int(p) for p in pixels]
    K = len(pixels)
    if given is not None:
        counts = [int(given.get(i, 0)) for i in range(K)]
    elif how == "equal":
        counts = [total // K + (1 if i < total % K else 0) for i in range(K)]
    elif how == "proportional":
        counts = _proportional(total, pixels, minimum)
    else:
        raise InputError(f"allocation must be one of {', '.join(ALLOCATIONS)} or per class, got {how!r}")
    if any(c < 0 for c in counts):
        raise InputError(f"points per class must be 0 or more, got {counts}")
    return [min(c, p) for c, p in zip(counts, pixels)]


def _proportional(total: int, pixels: list[int], minimum: int) -> list[int]:
    present = [i for i, p in enumerate(pixels) if p > 0]
    fixed: dict[int, int] = {}
    while True:  # classes whose share falls below the minimum get the minimum; the rest share what is left
        free = [i for i in present if i not in fixed]
        left = max(total - sum(fixed.values()), 0)
        mass = sum(pixels[i] for i in free)
        share = {i: left * pixels[i] / mass for i in free} if mass else {}
        low = [i for i in free if share[i] < minimum]
        if not low:
            break
        fixed.update({i: minimum for i in low})
    counts = [0] * len(pixels)
    for i, c in fixed.items():
        counts[i] = c
    # largest remainders: the proportional part sums to what is left exactly
    floors = {i: int(math.floor(v)) for i, v in share.items()}
    rest = left - sum(floors.values())
    for i in sorted(share, key=lambda i: share[i] - floors[i], reverse=True)[:max(rest, 0)]:
        floors[i] += 1
    for i, c in floors.items():
        counts[i] = c
    return counts


def name_values(text: str, cast, what: str) -> dict:
    """'water=0.95, roads=0.6' -> {"water": 0.95, "roads": 0.6}, or one line naming `what`."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.rpartition("=")
        if not sep or not name:
            raise InputError(f"{what} must look like name=value,name=value, got {text!r}")
        try:
            out[name.strip()] = cast(value)
        except ValueError:
            raise InputError(f"{what}: {value!r} is not a number (in {text!r})") from None
    return out
