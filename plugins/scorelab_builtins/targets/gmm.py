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
    weights: list[float]  # component weights, positive and summing to 1
    means: list[list[float]]  # one mean vector per component, all of the same dimension
    stds: list[float] | None = None  # isotropic standard deviation per component (or covariances)
    covariances: list[list[list[float]]] | None = None  # a full d x d covariance per component (or stds)

    name = "gmm"

    def __post_init__(self):
        w = _tensor(self.weights, "weights")
        mu = _tensor(self.means, "means")
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
            std = _tensor(self.stds, "stds")
            if std.shape != (K,) or (std <= 0).any():
                raise ValueError(f"stds must be {K} positive numbers")
            lam, U = (std[:, None] ** 2).expand(K, d), None
        else:
            cov = _tensor(self.covariances, "covariances")
            if cov.shape != (K, d, d) or not torch.allclose(cov, cov.transpose(1, 2)):
                raise ValueError(f"covariances must be {K} symmetric {d}x{d} matrices")
            lam, U = torch.linalg.eigh(cov)
            if (lam <= 0).any():
                raise ValueError("covariances must be positive definite")
        self._set_components(w, mu, U, lam.contiguous())

    def component_log_probs(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        """log w_k + log N(x; mu_k, Sigma_k + sigma^2 I), shape (n, K): assigns samples to modes."""
        return mx.component_log_probs(x, *self._params, sigma)


def _tensor(value, field: str) -> torch.Tensor:
    """A field as a float64 tensor; ragged nesting (points of different lengths) is named, not torch's words."""
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{field} must be a regular array, every row of one length ({exc})") from None
