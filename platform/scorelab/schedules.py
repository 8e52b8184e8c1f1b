"""Noise-level and checkpoint schedules: small functions any sampler or runner can use."""

from __future__ import annotations

import math


def geometric_sigmas(sigma_max: float, sigma_min: float, levels: int) -> list[float]:
    """sigma_1 > ... > sigma_L, geometric from sigma_max to sigma_min (NCSN's schedule).

    >>> [round(s, 3) for s in geometric_sigmas(10.0, 0.1, 3)]
    [10.0, 1.0, 0.1]
    """
    if levels == 1:
        return [float(sigma_min)]
    ratio = (sigma_min / sigma_max) ** (1.0 / (levels - 1))
    return [sigma_max * ratio**i for i in range(levels)]


def log_spaced_checkpoints(budget: float, count: int, first_fraction: float = 0.01) -> list[float]:
    """``count`` costs, log-spaced from ``first_fraction * budget`` to ``budget``.

    >>> log_spaced_checkpoints(1000, 3)
    [10.0, 100.0, 1000.0]
    """
    if count == 1:
        return [float(budget)]
    lo, hi = math.log(max(first_fraction * budget, 1.0)), math.log(budget)
    return [round(math.exp(lo + (hi - lo) * i / (count - 1)), 6) for i in range(count)]
