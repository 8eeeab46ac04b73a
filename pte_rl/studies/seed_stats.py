"""Statistics over seeds: mean, sample standard deviation, range, and a 95% Student-t interval; over tasks,
a seeded bootstrap interval of a relative change.

No SciPy: the t quantiles for up to 30 degrees of freedom are tabulated, and above that the
Cornish-Fisher expansion is within 0.003 of the exact value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

import numpy as np


class Stats(TypedDict):
    """What :func:`stats` returns: None where there is no finite value (``std``: fewer than two)."""

    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    n: int


class Interval(TypedDict):
    """What :func:`interval` returns: ``low`` and ``high`` are None for fewer than two values."""

    mean: float | None
    low: float | None
    high: float | None
    n: int


def stats(values: Sequence[float | None]) -> Stats:
    """mean, sample std (n - 1; None for one value), min, max and n of the finite values (a None, a
    non-number or a NaN is left out)."""
    vals = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    return {"mean": mean, "std": std, "min": min(vals), "max": max(vals), "n": len(vals)}


# Two-sided 95% quantiles of Student's t, df 1..30; above 30 the Cornish-Fisher expansion
# z + (z^3 + z) / (4 df) (within 0.003 of the exact value there).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df)


def interval(values: Sequence[float | None]) -> Interval:
    """mean and 95% Student-t interval (low, high) of ``values``; no interval for fewer than two."""
    s = stats(values)
    mean, std, n = s["mean"], s["std"], s["n"]
    # Two or more finite values always have a mean and a std: the None checks only narrow the types.
    if n < 2 or mean is None or std is None:
        return {"mean": mean, "low": None, "high": None, "n": n}
    half = t975(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def bootstrap_change(
    values: Sequence[float], references: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> Interval:
    """Relative change ``100 * (sum(values) / sum(references) - 1)`` (in %) and its 95% percentile bootstrap
    interval: ``resamples`` draws of the units (pairs ``values[k]``, ``references[k]``, e.g. tasks) with
    replacement, the 2.5th and 97.5th percentiles (linear) of the change over the draws. The generator is
    seeded, so an interval is the same at every call; no interval for fewer than two units.

    >>> bootstrap_change([110.0, 90.0], [100.0, 100.0])["mean"]
    0.0
    >>> c = bootstrap_change([50.0, 60.0, 70.0], [100.0, 100.0, 100.0])   # every draw lies in -50% .. -30%
    >>> c["mean"], -50.0 <= c["low"] < c["mean"] < c["high"] <= -30.0, c == bootstrap_change(
    ...     [50.0, 60.0, 70.0], [100.0, 100.0, 100.0])
    (-40.0, True, True)
    """
    if len(values) != len(references):
        raise ValueError(f"references: expected {len(values)} values (one per unit), got {len(references)}")
    numerators, denominators = np.asarray(values, dtype=float), np.asarray(references, dtype=float)
    n = len(numerators)
    if n == 0 or denominators.sum() <= 0:
        return {"mean": None, "low": None, "high": None, "n": n}
    mean = 100.0 * (numerators.sum() / denominators.sum() - 1.0)
    if n < 2:
        return {"mean": float(mean), "low": None, "high": None, "n": n}
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    changes = 100.0 * (numerators[draws].sum(axis=1) / denominators[draws].sum(axis=1) - 1.0)
    low, high = np.percentile(changes, [2.5, 97.5])
    return {"mean": float(mean), "low": float(low), "high": float(high), "n": n}
