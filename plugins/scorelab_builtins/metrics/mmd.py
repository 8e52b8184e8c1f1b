"""``mmd``: the squared maximum mean discrepancy with a Gaussian (RBF) kernel, unbiased estimate.

    MMD^2_u = 1/(n(n-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j)
              - 2/(nm) sum_{i,j} k(x_i, y_j),        k(x, y) = exp(-|x - y|^2 / (2 l^2)),

with the bandwidth l the median pairwise distance of the pooled sample (the median heuristic;
taken on a random subset of 1000 pooled points) unless ``bandwidth`` fixes it. The U-statistic can
be slightly negative when the two distributions agree; it is returned as it is, since clipping it
at zero would bias the quality floor upwards. O((n + m)^2), so both sets are subsampled to
``max_points``. Reference: Gretton et al. (2012), "A kernel two-sample test", JMLR 13.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import finite, pair, subsample

# Points for the median heuristic: the median of their ~5e5 pair distances is within a few percent
# of that of the whole pooled sample, at a small fraction of the cost of the kernel sums.
_MEDIAN_POINTS = 1000
# Kernel entries computed at once (32 MB): the (n+m)^2 matrix never exists whole.
_CHUNK = 1 << 22


def median_distance(z: torch.Tensor) -> torch.Tensor:
    """Median pairwise Euclidean distance between the rows of ``z``; the mean distance where more
    than half the pairs coincide, so a bandwidth is 0 only when all points are equal."""
    d = torch.pdist(z)
    med = d.median()
    return torch.where(med > 0, med, d.mean())


def kernel_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum_ij exp(-|a_i - b_j|^2), in row blocks."""
    one_a, one_b = a.new_ones(len(a), 1), b.new_ones(len(b), 1)
    # [2a, -|a|^2, -1] . [b, 1, |b|^2] = -|a - b|^2: one matrix product writes the whole exponent.
    lhs = torch.cat([2 * a, -(a * a).sum(1, keepdim=True), -one_a], 1)
    rhs = torch.cat([b, one_b, (b * b).sum(1, keepdim=True)], 1).T
    total = a.new_zeros(())
    rows = max(1, _CHUNK // len(b))
    for i in range(0, len(a), rows):
        # Rounding can leave an exponent of +1e-16 or so for equal points: exp of it is 1 all the same.
        total += (lhs[i : i + rows] @ rhs).exp_().sum()
    return total


@dataclass
class MMD:
    """Unbiased squared MMD with an RBF kernel.

    Parameters
    ----------
    bandwidth : kernel length scale l; None (default) applies the median heuristic at each call.
    max_points : at most this many samples and this many reference points are used.
    seed : seed of the subsampling, fixed so that repeated calls agree.
    """

    bandwidth: float | None = None  # RBF length scale l, in the data's units, > 0; None: median heuristic at each call
    max_points: int = 2000  # at most this many samples and reference points each (cost O((n + m)^2 d)), >= 2
    seed: int = 0  # seed of the subsampling and of the median-heuristic subset, so calls agree

    name = "mmd"

    def __post_init__(self):
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 or None, got {self.bandwidth}")
        if self.max_points < 2:
            raise ValueError(f"max_points must be >= 2, got {self.max_points}")

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        x, y = pair(samples, reference)
        if len(x) < 2 or len(y) < 2:
            raise ValueError("mmd needs at least 2 samples and 2 reference points")
        if not finite(x):
            return float("nan")
        g = torch.Generator().manual_seed(self.seed)
        x, y = subsample(x, self.max_points, g), subsample(y, self.max_points, g)
        n, m = len(x), len(y)
        z = torch.cat([x, y])
        z = z - z.mean(0)  # centring keeps 2 a.b - |a|^2 - |b|^2 from cancelling far from the origin
        if self.bandwidth is None:
            # The subset is drawn without regard to which set a point came from, so under equal
            # distributions the estimate stays unbiased given the bandwidth.
            l = median_distance(subsample(z, _MEDIAN_POINTS, g))
        else:
            l = torch.tensor(self.bandwidth, dtype=torch.float64, device=z.device)
        # Scaled so that k(a, b) = exp(-|a - b|^2); l = 0 only when all points are equal (z = 0).
        z = z / (2**0.5 * l).clamp(min=torch.finfo(torch.float64).tiny)
        x, y = z[:n], z[n:]
        # Every k(a, a) is exp(0) = 1, so the U-statistics drop n and m from the within-set sums.
        kxx = (kernel_sum(x, x) - n) / (n * (n - 1))
        kyy = (kernel_sum(y, y) - m) / (m * (m - 1))
        kxy = kernel_sum(x, y) / (n * m)
        return float(kxx + kyy - 2 * kxy)
