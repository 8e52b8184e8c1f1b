"""Efficiency figures from quality-vs-cost curves: cost to reach quality, censored medians, paired
speedups with intervals.

Pure functions on plain numbers, so a comparison in memory and a report rebuilt from MLflow
compute exactly the same figures.

Cost to quality is a time-to-event: a seed that never reaches quality within the budget is
*censored* there (its cost is only known to exceed the budget) and is carried as ``inf``, never
dropped. Medians and order statistics stay well defined under such censoring as long as enough
seeds reach, and say "> budget" when not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import binom

NOT_REACHED = math.inf  # cost to reach quality when a run never got there: a value, not an error


def cost_to_reach(curve: Sequence[tuple[float, float]], threshold: float) -> float:
    """The first point's cost from which the metric stays at or under ``threshold`` until the end of
    the curve (inf if it never does). A chain passing through the target on its way to a biased
    equilibrium has not reached quality: only a level it keeps counts.

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


def interpolate(curve: Sequence[tuple[float, float]], cost: float) -> float:
    """The curve's value at ``cost``, linear between its points (nan outside them); for the wall
    time spent up to a crossing that falls between two checkpoints.

    >>> interpolate([(0, 0.0), (100, 2.0)], 25)
    0.5
    """
    if not math.isfinite(cost):
        return cost
    for (c0, v0), (c1, v1) in zip(curve, curve[1:], strict=False):
        if c0 <= cost <= c1:
            return v0 if c1 == c0 else v0 + (v1 - v0) * (cost - c0) / (c1 - c0)
    return curve[-1][1] if curve and curve[-1][0] == cost else math.nan


def median(values: Sequence[float]) -> float:
    """Median with censored values (inf) in their place at the top: inf when half or more are censored."""
    v = np.sort(np.asarray(values, float))
    if len(v) == 0:
        return math.nan
    k = len(v) // 2
    return float(v[k]) if len(v) % 2 else float((v[k - 1] + v[k]) / 2)


def median_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """(median, low, high, achieved level): the distribution-free order-statistic interval for the
    median, [x_(j), x_(n+1-j)] with the largest j whose binomial coverage is at least ``level``
    (or [min, max] when even that falls short; the achieved level says so). Censored values sort
    last, so the interval stays valid under censoring at the budget: an upper end that is censored
    reads inf ("> budget"). With 5 seeds it is [min, max] at 93.8 %.

    >>> median_interval([5, 1, 4, 2, 3])
    (3.0, 1.0, 5.0, 0.9375)
    """
    v = np.sort(np.asarray(values, float))
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    j, achieved = 1, 1 - 2 * binom.cdf(0, n, 0.5)
    for k in range(2, (n + 1) // 2 + 1):  # coverage of [x_(k), x_(n+1-k)] is 1 - 2 P(B <= k-1)
        cover = 1 - 2 * binom.cdf(k - 1, n, 0.5)
        if cover < level:
            break
        j, achieved = k, cover
    return median(v), float(v[j - 1]), float(v[n - j]), float(achieved)


def _ratio_of_medians(base: np.ndarray, other: np.ndarray) -> np.ndarray:
    """median(base) / median(other) along the last axis; censored medians give inf or 0, both censored nan."""
    mb, mo = np.median(base, -1), np.median(other, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return mb / mo


def paired_speedup(
    base: Sequence[float], other: Sequence[float], *, level: float = 0.95, resamples: int = 4000, seed: int = 0,
) -> tuple[float, float, float]:
    """Speedup of ``other`` over ``base``, median(base cost) / median(other cost), with a paired
    percentile bootstrap interval: seeds are resampled as pairs, since both samplers started from
    the same chains on a seed. Censored costs (inf) take part: a resample whose median for ``other``
    is censored gives a ratio of 0, one whose baseline median is censored gives inf. Returns (ratio,
    low, high); nan when there are no pairs or both medians are censored.

    >>> paired_speedup([100, 200, 300], [10, 20, 30])[0]
    10.0
    """
    b, o = np.asarray(base, float), np.asarray(other, float)
    if len(b) != len(o):
        raise ValueError(f"paired costs need equal lengths, got {len(b)} and {len(o)}")
    if len(b) == 0:
        return math.nan, math.nan, math.nan
    ratio = float(_ratio_of_medians(b, o))
    if math.isnan(ratio):
        return math.nan, math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, len(b), (resamples, len(b)))
    boot = _ratio_of_medians(b[idx], o[idx])
    boot = boot[~np.isnan(boot)]  # resamples where both medians are censored say nothing either way
    alpha = (1 - level) / 2
    if not len(boot):
        return ratio, math.nan, math.nan
    # Order statistics, not interpolation: a quantile between a finite ratio and a censored one is not a number.
    return ratio, float(np.quantile(boot, alpha, method="lower")), float(np.quantile(boot, 1 - alpha, method="higher"))
