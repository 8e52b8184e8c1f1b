"""``energy_distance``: the multivariate energy distance between samples and a reference.

    E = 2 E|X - Y| - E|X - X'| - E|Y - Y'|
      ~ 2/(nm) sum_{i,j} |x_i - y_j| - 1/(n(n-1)) sum_{i!=j} |x_i - x_j| - 1/(m(m-1)) sum_{i!=j} |y_i - y_j|,

Euclidean norms. E >= 0, with equality only for equal distributions (Szekely & Rizzo 2013, "Energy
statistics: a class of statistics based on distances", J. Stat. Plan. Inference 143). The
within-sample terms are U-statistics, so the estimate is unbiased and, for equal distributions,
slightly negative about half the time; it is returned as it is (clipping at zero would bias a
quality floor upwards). It is in the units of the data (scipy's ``energy_distance`` is 1-D only and
is the square root of a different normalisation). O((n + m)^2 d) in blocks of rows; both sets are
subsampled to ``max_points``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import finite, pair, subsample

# Distances computed at once (32 MB of float64): no n x m matrix exists whole.
_CHUNK = 1 << 22


def distance_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum_{i,j} |a_i - b_j| in row blocks. Distances are taken directly, not through the
    |a|^2 + |b|^2 - 2 a.b expansion: a point's distance to itself is exactly 0, so a within-set sum
    over all pairs is the sum over i != j."""
    total = a.new_zeros(())
    rows = max(1, _CHUNK // len(b))
    for i in range(0, len(a), rows):
        total += torch.cdist(a[i : i + rows], b, compute_mode="donot_use_mm_for_euclid_dist").sum()
    return total


@dataclass
class EnergyDistance:
    """Unbiased multivariate energy distance, 2E|X - Y| - E|X - X'| - E|Y - Y'|.

    Parameters
    ----------
    max_points : at most this many samples and this many reference points are used.
    seed : seed of the subsampling, fixed so that repeated calls agree.
    """

    max_points: int = 2000  # at most this many samples and reference points each (cost O(n^2 d)), >= 2
    seed: int = 0  # seed of the subsampling, so repeated calls agree

    name = "energy_distance"

    def __post_init__(self):
        if self.max_points < 2:
            raise ValueError(f"max_points must be >= 2, got {self.max_points}")

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        x, y = pair(samples, reference)
        if len(x) < 2 or len(y) < 2:
            raise ValueError("energy_distance needs at least 2 samples and 2 reference points")
        if not finite(x):
            return float("nan")
        g = torch.Generator().manual_seed(self.seed)
        x, y = subsample(x, self.max_points, g), subsample(y, self.max_points, g)
        n, m = len(x), len(y)
        xy = distance_sum(x, y) / (n * m)
        xx = distance_sum(x, x) / (n * (n - 1))
        yy = distance_sum(y, y) / (m * (m - 1))
        return float(2 * xy - xx - yy)
