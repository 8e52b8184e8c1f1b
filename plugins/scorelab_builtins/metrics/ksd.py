"""``ksd``: the kernel Stein discrepancy of samples from the target, with the IMQ kernel.

    KSD^2 = 1/n^2 sum_{i,j} k_p(x_i, x_j),
    k_p(x, y) = s(x).s(y) k + s(x).grad_y k + s(y).grad_x k + tr(grad_x grad_y k),

with s = grad log p the target's exact score and k(x, y) = (c^2 + |x - y|^2)^beta, beta = -1/2 and
c = 1 by default. Writing u = c^2 + r^2, r = x - y, the Stein kernel is, in closed form,

    k_p = u^beta s(x).s(y) + 2 beta u^(beta-1) (s(y) - s(x)).r - 2 beta d u^(beta-1)
          - 4 beta (beta-1) u^(beta-2) |r|^2.

It needs the score only (no normalising constant, no reference samples), so it is the one quality
measure that works from a score alone; with beta in (-1, 0) it detects non-convergence, also of
samples that drift off to infinity (Gorham & Mackey 2017, "Measuring sample quality with kernels",
ICML, Theorems 6-8; the IMQ choice c = 1, beta = -1/2 is theirs).

Returned: the square root of the **V-statistic** (the double sum including i = j), in the units of
the score. The V-statistic is never negative, so a quality floor is positive; its price is a bias:
E[KSD^2] = E[k_p(X, X)] / n for exact samples, which is (E|s|^2 c^(2 beta) - 2 beta d
c^(2 beta - 2)) / n, i.e. 2d/n for a standard Gaussian with the defaults; the floor (two exact sets,
the same n) carries the same bias, so a ratio to it reads fairly. The unbiased U-statistic (i != j
only) is not returned: it is negative about half the time on exact samples, and a square root of it
would not exist.

O(n^2 d) in blocks of rows, so memory stays bounded; at most ``max_points`` samples are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import as_matrix, finite, subsample

# Pair entries computed at once (16 MB a temporary, a handful of temporaries): the n^2 Stein kernel
# matrix never exists whole.
_CHUNK = 1 << 21


def stein_kernel_sum(x: torch.Tensor, s: torch.Tensor, c: float, beta: float) -> torch.Tensor:
    """sum_{i,j} k_p(x_i, x_j) for points ``x`` (n, d) with scores ``s`` (n, d), in row blocks."""
    n, d = x.shape
    x = x - x.mean(0)  # r_ij and (s_j - s_i).r_ij are translation invariant; centring avoids cancellation
    sq = (x * x).sum(1)
    a = (s * x).sum(1)  # s_i . x_i
    total = x.new_zeros(())
    rows = max(1, _CHUNK // n)
    for i in range(0, n, rows):
        xb, sb = x[i : i + rows], s[i : i + rows]
        r2 = (sq[i : i + rows, None] + sq[None, :] - 2 * xb @ x.T).clamp_(min=0)
        u = r2 + c * c
        # (s_j - s_i).(x_i - x_j) = s_j.x_i - s_j.x_j - s_i.x_i + s_i.x_j
        sr = xb @ s.T + sb @ x.T - a[None, :] - a[i : i + rows, None]
        ub1 = u.pow(beta - 1)
        kp = u.pow(beta) * (sb @ s.T) + 2 * beta * ub1 * (sr - d) - 4 * beta * (beta - 1) * (ub1 / u) * r2
        total += kp.sum()
    return total


@dataclass
class KSD:
    """Kernel Stein discrepancy (V-statistic, square-rooted) with the IMQ kernel (c^2 + |x - y|^2)^beta.

    Parameters
    ----------
    c : kernel scale, in the units of the data (> 0).
    beta : kernel exponent, in (-1, 0).
    max_points : at most this many samples are used (the cost is quadratic).
    seed : seed of the subsampling, fixed so that repeated calls agree.
    """

    c: float = 1.0  # IMQ kernel scale in (c^2 + |x - y|^2)^beta, in the data's units, > 0
    beta: float = -0.5  # IMQ kernel exponent, in (-1, 0)
    max_points: int = 2000  # at most this many samples are used (cost O(n^2 d)), >= 1
    seed: int = 0  # seed of the subsampling, so repeated calls agree

    requires = ("exact_score",)
    name = "ksd"

    def __post_init__(self):
        if not self.c > 0:
            raise ValueError(f"c must be > 0, got {self.c}")
        if not -1 < self.beta < 0:
            raise ValueError(f"beta must be in (-1, 0), got {self.beta}")
        if self.max_points < 1:
            raise ValueError(f"max_points must be >= 1, got {self.max_points}")

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        if len(samples) < 1:
            raise ValueError("ksd needs at least one sample")
        if not finite(samples):
            return float("nan")
        x = subsample(samples.detach(), self.max_points, torch.Generator().manual_seed(self.seed))
        # Metrics are not samplers: the target's exact score is called directly, not through an oracle.
        s = as_matrix(target.score(x, 0.0), x.device)
        x = as_matrix(x, x.device)
        if not finite(s):
            return float("nan")
        v = stein_kernel_sum(x, s, self.c, self.beta) / len(x) ** 2
        return float(v.clamp(min=0).sqrt())  # >= 0 up to rounding: k_p is a positive definite kernel
