"""What banana and funnel share: analytic targets whose score is known at sigma = 0 only.

A subclass computes the pieces every quantity is built from once (``_parts``), and from them
``_log_prob``, ``_score`` and ``_hess_diag``; this class gives the public methods, each refusing a
noise level, and ``log_prob_and_score`` from one pass. Exact moments: ``_mean`` and ``_variances``
(the covariance is diagonal), set in ``__post_init__``.
"""

from __future__ import annotations

import torch

from scorelab.targets import TargetBase


class NoiselessTarget(TargetBase):
    noise_conditional = False

    def _parts(self, x: torch.Tensor) -> tuple:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        self.check_noiseless(sigma)
        return self._log_prob(*self._parts(x))

    def score(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        self.check_noiseless(sigma)
        return self._score(*self._parts(x))

    def log_prob_and_score(self, x: torch.Tensor, sigma=0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Both from one evaluation (what an oracle charges one NFE for)."""
        self.check_noiseless(sigma)
        parts = self._parts(x)
        return self._log_prob(*parts), self._score(*parts)

    def hess_diag(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        self.check_noiseless(sigma)
        return self._hess_diag(*self._parts(x))

    @property
    def mean(self) -> torch.Tensor:
        return self._mean

    @property
    def covariance(self) -> torch.Tensor:
        return torch.diag(self._variances)
