"""Efficiency figures from quality-vs-cost curves: cost to reach quality, speedups with intervals.

Pure functions on plain numbers, so a comparison in memory and a report rebuilt from MLflow
compute exactly the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

NOT_REACHED = math.inf  # cost to reach quality when a run never got there: a value, not an error


def cost_to_reach(curve: Sequence[tuple[float, float]], threshold: float) -> float:
    """The first checkpoint cost from which the metric stays at or under ``threshold`` until the
    end of the budget (inf if it never does). A chain passing through the target on its way to a
    biased equilibrium has not reached quality: only a level it keeps counts.

    >>> cost_to_reach([(10, 3.0), (100, 1.2), (1000, 0.9)], 1.0)
    1000
    >>> cost_to_reach([(10, 3.0), (100, 0.5), (1000, 1.5)], 1.0)  # a passing dip does not count
    inf
    """
    reached = NOT_REACHED
    for cost, value in curve:
        if value <= threshold:  # NaN compares False: a diverged point never counts as reached
            reached = min(reached, cost)
        else:
            reached = NOT_REACHED
    return reached


def value_at(curve: Sequence[tuple[float, float]], cost: float) -> float:
    """The curve's value at the first checkpoint at or after ``cost`` (for wall time at a cost)."""
    for c, value in curve:
        if c >= cost:
            return value
    return math.nan


def bootstrap_ratio(
    numerator: Sequence[float], denominator: Sequence[float], *, level: float = 0.95, resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """mean(numerator) / mean(denominator) with a percentile bootstrap interval, resampling each
    group's seeds independently. Returns (ratio, low, high); all inf/nan when any value is inf."""
    num, den = np.asarray(numerator, float), np.asarray(denominator, float)
    if len(num) == 0 or len(den) == 0 or not (np.isfinite(num).all() and np.isfinite(den).all()):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    boot_num = num[rng.integers(0, len(num), (resamples, len(num)))].mean(1)
    boot_den = den[rng.integers(0, len(den), (resamples, len(den)))].mean(1)
    ratios = boot_num / boot_den
    alpha = (1 - level) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return float(num.mean() / den.mean()), float(low), float(high)
