"""``gmm``: a Gaussian mixture in any dimension, with weights, means and covariances.

Each component's covariance is given by ``stds`` (isotropic: one number per component) or by
``covariances`` (full d x d matrices). Unequal weights on well-separated modes are where plain
Langevin fails (it cannot cross between modes) and annealing helps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _mixture as mx
from ._base import MixtureTarget


@dataclass
class GMM(MixtureTarget):
    weights: list[float]
    means: list[list[float]]
    stds: list[float] | None = None
    covariances: list[list[list[float]]] | None = None

    name = "gmm"

    def __post_init__(self):
        w = torch.as_tensor(self.weights, dtype=torch.float64)
        mu = torch.as_tensor(self.means, dtype=torch.float64)
        if w.ndim != 1 or len(w) < 1 or (w <= 0).any():
            raise ValueError("weights must be a non-empty list of positive numbers")
        if abs(float(w.sum()) - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to 1, they sum to {float(w.sum()):.6g}")
        if mu.ndim != 2 or mu.shape[0] != len(w):
            raise ValueError(f"means must be a list of {len(w)} points (one per weight), all of one dimension")
        K, d = mu.shape
        if (self.stds is None) == (self.covariances is None):
            raise ValueError("give exactly one of 'stds' (one per component) or 'covariances'")
        if self.stds is not None:
            std = torch.as_tensor(self.stds, dtype=torch.float64)
            if std.shape != (K,) or (std <= 0).any():
                raise ValueError(f"stds must be {K} positive numbers")
            lam, U = (std[:, None] ** 2).expand(K, d), None
        else:
            cov = torch.as_tensor(self.covariances, dtype=torch.float64)
            if cov.shape != (K, d, d) or not torch.allclose(cov, cov.transpose(1, 2)):
                raise ValueError(f"covariances must be {K} symmetric {d}x{d} matrices")
            lam, U = torch.linalg.eigh(cov)
            if (lam <= 0).any():
                raise ValueError("covariances must be positive definite")
        self._set_components(w, mu, U, lam.contiguous())

    def component_log_probs(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        """log w_k + log N(x; mu_k, Sigma_k + sigma^2 I), shape (n, K): assigns samples to modes."""
        return mx.component_log_probs(x, *self._params, sigma)
