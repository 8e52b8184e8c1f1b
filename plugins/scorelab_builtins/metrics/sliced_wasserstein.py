"""``sliced_wasserstein``: the sliced Wasserstein distance SW_p between samples and a reference.

    SW_p(mu, nu) = ( E_theta[ W_p^p(theta # mu, theta # nu) ] )^(1/p),   theta uniform on the sphere,

estimated with a fixed set of ``projections`` directions drawn from ``seed`` (the same directions
at every checkpoint, so a curve over cost is not noisier than the samples make it). Each 1-D
W_p^p is computed exactly between the two empirical measures from their quantile functions, also
when the sample sizes differ. O((n + m) log(n + m)) per direction. References: Rabin et al. (2011),
Bonneel et al. (2015).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._common import finite, pair


def directions(dim: int, count: int, seed: int, device: torch.device) -> torch.Tensor:
    """``count`` unit vectors as the rows of a (count, dim) matrix; drawn on the CPU so they are the
    same on every device."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(count, dim, generator=g, dtype=torch.float64)
    return (theta / theta.norm(dim=1, keepdim=True)).to(device)


def sort_rows(a: torch.Tensor) -> torch.Tensor:
    if a.device.type == "cpu":  # NumPy's sort is several times faster than torch's on the CPU
        return torch.from_numpy(np.sort(a.numpy(), axis=1))
    return a.sort(dim=1).values


def wasserstein_pp(a: torch.Tensor, b: torch.Tensor, p: float) -> torch.Tensor:
    """W_p^p between the empirical measures of each row of sorted ``a`` (P, n) and ``b`` (P, m)."""
    n, m = a.shape[1], b.shape[1]
    if n == m:
        return (a - b).abs_().pow_(p).mean(1)
    # Both quantile functions are steps, constant between consecutive levels of {i/n} u {j/m}, so the
    # integral over (0, 1) of |F^-1 - G^-1|^p is an exact weighted sum over those intervals.
    kw = {"dtype": torch.float64, "device": a.device}
    levels = torch.cat([torch.arange(1, n, **kw) / n, torch.arange(1, m, **kw) / m, torch.ones(1, **kw)])
    levels = levels.sort().values
    width = torch.diff(levels, prepend=torch.zeros(1, **kw))
    mid = levels - width / 2  # at least 1/(2nm) inside its interval, so the floors below are exact
    ia = (mid * n).long().clamp_(max=n - 1)
    ib = (mid * m).long().clamp_(max=m - 1)
    return (a[:, ia] - b[:, ib]).abs_().pow_(p) @ width


@dataclass
class SlicedWasserstein:
    """Sliced Wasserstein-p distance; in the units of the data.

    Parameters
    ----------
    projections : number of random directions.
    p : order of the distance (>= 1).
    seed : seed of the directions, fixed so every call uses the same ones.
    """

    projections: int = 128  # random unit directions theta, the same at every call, >= 1
    p: float = 2.0  # order p of SW_p, >= 1
    seed: int = 0  # seed of the directions, fixed so every call uses the same ones

    name = "sliced_wasserstein"

    def __post_init__(self):
        if self.projections < 1:
            raise ValueError(f"projections must be >= 1, got {self.projections}")
        if not self.p >= 1:
            raise ValueError(f"p must be >= 1, got {self.p}")

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        x, y = pair(samples, reference)
        if not finite(x):
            return float("nan")
        theta = directions(x.shape[1], self.projections, self.seed, x.device)
        a, b = sort_rows(theta @ x.T), sort_rows(theta @ y.T)  # (projections, n): one row a direction
        return float(wasserstein_pp(a, b, self.p).mean() ** (1 / self.p))
