"""Statistics over seeds: mean, sample standard deviation, range, and a 95% Student-t interval.

No SciPy: the t quantiles for up to 30 degrees of freedom are tabulated, and above that the
Cornish-Fisher expansion is within 0.003 of the exact value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def stats(values: Sequence[float]) -> dict[str, float | int | None]:
    """mean, sample std (n - 1; None for one value), min, max and n of the finite values."""
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


def interval(values: Sequence[float]) -> dict[str, float | int | None]:
    """mean and 95% Student-t interval (low, high) of ``values``; no interval for fewer than two."""
    s = stats(values)
    if s["n"] < 2:
        return {"mean": s["mean"], "low": None, "high": None, "n": s["n"]}
    half = t975(s["n"] - 1) * s["std"] / math.sqrt(s["n"])
    return {"mean": s["mean"], "low": s["mean"] - half, "high": s["mean"] + half, "n": s["n"]}
