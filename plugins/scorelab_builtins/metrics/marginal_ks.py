"""``max_marginal_ks``: the worst coordinate's two-sample Kolmogorov–Smirnov distance to the reference.

    max_i sup_t | F_i(t) - G_i(t) |,   F_i, G_i the empirical CDFs of coordinate i in samples and reference

Free of units and of moments, so it stays meaningful where variances are huge or heavy-tailed (the
funnel's x_k have kurtosis 3 e^(s^2)) and sees a marginal that is right in its moments and wrong in
its shape (a funnel sampler that never enters the neck has v's mean nearly right and its lower tail
missing). Between two independent sample sets of sizes n and m from one continuous law, each
coordinate's statistic times sqrt(nm / (n + m)) follows Kolmogorov's distribution (median 0.83), so
the floor is about 0.83 sqrt(2 / n) per coordinate and somewhat more for the worst of d. It looks only
at coordinates: dependence between them is what a joint metric (energy distance, KSD) is for.
Reference: Smirnov (1948); scipy.stats.ks_2samp computes the same statistic one coordinate at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import finite, pair


def ks_statistics(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per coordinate, sup |F - G| between the columns of x (n, d) and y (m, d): (d,). One sort of the
    pooled values per coordinate; the empirical CDFs' difference is a cumulative sum of +1/n and -1/m."""
    n, m = len(x), len(y)
    pooled = torch.cat([x, y]).T  # (d, n + m)
    steps = torch.cat([torch.full((n,), 1.0 / n, dtype=x.dtype, device=x.device),
                       torch.full((m,), -1.0 / m, dtype=x.dtype, device=x.device)])
    order = pooled.argsort(dim=1, stable=True)
    diff = steps[order].cumsum(dim=1)
    # Tied values: the CDFs jump together, so only the last position of each run of ties counts.
    values = pooled.gather(1, order)
    last = torch.ones_like(values, dtype=torch.bool)
    last[:, :-1] = values[:, 1:] != values[:, :-1]
    return torch.where(last, diff.abs(), torch.zeros_like(diff)).amax(dim=1)


@dataclass
class MaxMarginalKS:
    """The largest two-sample Kolmogorov–Smirnov distance over coordinates; in [0, 1]."""

    name = "max_marginal_ks"

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        x, y = pair(samples, reference)
        if not finite(x):
            return float("nan")
        return float(ks_statistics(x, y).max())
