"""What the two analytic targets share: they are Gaussian mixtures held in eigen-form."""

from __future__ import annotations

import torch

from scorelab.targets import TargetBase

from . import _mixture as mx


class MixtureTarget(TargetBase):
    """Subclasses call ``_set_components`` with weights (K,), means (K, d), eigenvectors U (K, d, d)
    and eigenvalues lam (K, d) of each component's covariance; U is None for axis-aligned ones."""

    def _set_components(self, weights, means, U, lam) -> None:
        dtype = torch.float64  # built exactly; the runner casts to the run's dtype
        self.mixture_weights = torch.as_tensor(weights, dtype=dtype)
        self._means = torch.as_tensor(means, dtype=dtype)
        self._U = None if U is None else torch.as_tensor(U, dtype=dtype)
        self._lam = torch.as_tensor(lam, dtype=dtype)
        self.event_shape = (self._means.shape[-1],)

    @property
    def _params(self):
        return self.mixture_weights.log(), self._means, self._U, self._lam

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return mx.sample(n, generator, self.mixture_weights, self._means, self._U, self._lam)

    def log_prob(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        return mx.log_prob(x, *self._params, sigma)

    def score(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        return mx.score(x, *self._params, sigma)

    def log_prob_and_score(self, x: torch.Tensor, sigma=0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Both from one evaluation (what an oracle charges one NFE for). A subclass that overrides
        ``log_prob`` or ``score`` overrides this too, or the oracle's two would disagree."""
        return mx.log_prob_and_score(x, *self._params, sigma)

    def hess_diag(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        return mx.hess_diag(x, *self._params, sigma)

    @property
    def mean(self) -> torch.Tensor:
        return mx.moments(self.mixture_weights, self._means, self._U, self._lam)[0]

    @property
    def covariance(self) -> torch.Tensor:
        return mx.moments(self.mixture_weights, self._means, self._U, self._lam)[1]
