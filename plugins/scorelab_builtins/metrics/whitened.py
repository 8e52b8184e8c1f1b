"""Moment errors in the target's own frame, so that every direction counts the same.

``mean_error`` and ``covariance_error`` are relative to the target's overall scale: on an
ill-conditioned target a variance wrong by half along the stiffest direction (the smallest
variance) changes the covariance by a fraction of 1/condition_number of its norm, and they do not
see it. The metrics here first whiten by the true covariance Sigma = U diag(lam) U^T, so every
principal axis has unit variance, and then measure:

- ``whitened_covariance_error``: |Sigma^-1/2 C_hat Sigma^-1/2 - I|_F / sqrt(d);
- ``max_variance_error``: max_i |u_i^T C_hat u_i / lam_i - 1| over the principal axes;
- ``whitened_mean_error``: |Sigma^-1/2 (m_hat - m)| / sqrt(d);
- ``max_moment_error``: the largest per-axis mean error (in standard deviations) or relative
  variance error;
- ``gaussian_kl``: KL(N(m_hat, C_hat) || N(m, Sigma)).

m_hat and C_hat are the sample mean and unbiased sample covariance; m and Sigma are the target's
exact moments (capability ``moments``), else those of the reference samples, as for ``mean_error``.
The true covariance must be positive definite (a data set with constant pixels has no whitened
frame: these metrics refuse it). The sampling floors below are for n exact samples of a Gaussian
target in d dimensions, with nu = n - 1; they do not depend on its covariance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import finite, pair
from .moments import covariance, true_moments


class _Eigenframe:
    """The whitening matrix U diag(lam)^-1/2 of the last covariance seen, in float64. Sigma is fixed
    for a comparison while the metric runs at every checkpoint, so its eigendecomposition is kept;
    comparing a d x d matrix with the kept one costs far less than factorising it again."""

    def __init__(self):
        self._cov: torch.Tensor | None = None
        self._whitener: torch.Tensor | None = None

    def whitener(self, cov: torch.Tensor) -> torch.Tensor:
        kept = self._cov
        if kept is None or kept.device != cov.device or kept.shape != cov.shape or not torch.equal(kept, cov):
            lam, U = torch.linalg.eigh(cov)
            if not lam[0] > len(lam) * torch.finfo(lam.dtype).eps * lam[-1]:
                raise ValueError(f"the true covariance is singular (eigenvalues from {float(lam[0]):.3g} to "
                                 f"{float(lam[-1]):.3g}): whitened metrics need a positive definite one")
            self._cov, self._whitener = cov.clone(), U / lam.sqrt()
        return self._whitener


@dataclass
class _Whitened:
    """What the metrics below share: the samples' first two moments in the whitened frame."""

    def __post_init__(self):
        self._frame = _Eigenframe()  # not a field: a cache, not a hyperparameter

    def _moments(self, samples, reference, target, *, need_cov: bool = True):
        """(delta, W): Sigma^-1/2 (m_hat - m) and Sigma^-1/2 C_hat Sigma^-1/2, both in the eigenbasis of
        Sigma (W is None without ``need_cov``); None for non-finite samples."""
        x, _ = pair(samples, reference)
        if need_cov and len(x) < 2:
            raise ValueError(f"{self.name} needs at least 2 samples")
        if len(x) < 1:
            raise ValueError(f"{self.name} needs at least 1 sample")
        if not finite(x):
            return None
        mu, cov = true_moments(reference, target, x.device)
        w = self._frame.whitener(cov)
        delta = (x.mean(0) - mu) @ w
        return delta, (w.T @ covariance(x) @ w if need_cov else None)


@dataclass
class WhitenedCovarianceError(_Whitened):
    """Covariance error in the whitened frame, the same for every direction:

        |Sigma^-1/2 C_hat Sigma^-1/2 - I|_F / sqrt(d).

    Floor: E[value^2] = (d + 1) / nu for a Gaussian, i.e. about sqrt((d + 1) / n).
    """

    name = "whitened_covariance_error"

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        m = self._moments(samples, reference, target)
        if m is None:
            return float("nan")
        W = m[1]
        return float((W - torch.eye(len(W), dtype=W.dtype, device=W.device)).norm() / len(W) ** 0.5)


@dataclass
class MaxVarianceError(_Whitened):
    """The largest relative variance error along the principal axes u_i of Sigma:

        max_i |u_i^T C_hat u_i / lam_i - 1|.

    For a diagonal Sigma this is max_i |C_hat_ii / Sigma_ii - 1|; on a rotated target it still sees
    a wrong variance along the stiffest direction, which the per-coordinate form would miss (there
    each coordinate's variance is dominated by the wide directions).

    Floor: the axes' variance errors are independent, each |chi^2_nu / nu - 1|, about sqrt(2 / n)
    |N(0, 1)|; so about sqrt(2 / n) times the expected maximum of d |N(0, 1)| (2.17 for d = 20,
    2.51 for d = 50).
    """

    name = "max_variance_error"

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        m = self._moments(samples, reference, target)
        if m is None:
            return float("nan")
        return float((m[1].diagonal() - 1).abs().max())


@dataclass
class WhitenedMeanError(_Whitened):
    """Mean error in the whitened frame: |Sigma^-1/2 (m_hat - m)| / sqrt(d), the error in standard
    deviations of the target, root-mean-square over the principal axes.

    Floor: E[value^2] = 1 / n for any target with a finite covariance, i.e. about 1 / sqrt(n).
    """

    name = "whitened_mean_error"

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        m = self._moments(samples, reference, target, need_cov=False)
        if m is None:
            return float("nan")
        delta = m[0]
        return float(delta.norm() / len(delta) ** 0.5)


@dataclass
class MaxMomentError(_Whitened):
    """The worst principal axis of Sigma, by mean or by variance:

        max_i max(|u_i^T (m_hat - m)| / sqrt(lam_i), |u_i^T C_hat u_i / lam_i - 1|).

    A value v says every axis has its mean within v standard deviations and its variance within a
    relative error v: "every mean and variance within 10%" is v < 0.1.

    Floor: per axis, the mean's term is about |N(0, 1)| / sqrt(n) and the variance's sqrt(2 / n)
    |N(0, 1)|, independent; the maximum over the d axes is nearly always a variance term, so the
    floor is ``max_variance_error``'s, or a little above it.
    """

    name = "max_moment_error"

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        m = self._moments(samples, reference, target)
        if m is None:
            return float("nan")
        delta, W = m
        return float(torch.maximum(delta.abs(), (W.diagonal() - 1).abs()).max())


@dataclass
class GaussianKL(_Whitened):
    """KL divergence from the Gaussian fitted to the samples to the Gaussian of the true moments:

        KL(N(m_hat, C_hat) || N(m, Sigma)) = 1/2 [tr W - d - ln det W + |delta|^2]
                                           = 1/2 [sum_j (mu_j - 1 - ln mu_j) + |delta|^2],

    with W = Sigma^-1/2 C_hat Sigma^-1/2, mu_j its eigenvalues and delta = Sigma^-1/2 (m_hat - m);
    each term mu - 1 - ln mu >= 0 is summed on its own, so nothing cancels. Infinite when C_hat is
    singular (fewer than d + 1 samples, or samples confined to a subspace): the fitted Gaussian
    then has no density.

    Floor: E[value] = 1/2 [d / n - sum_{i=1..d} (digamma((nu - i + 1) / 2) + ln(2 / nu))], about
    d (d + 3) / (4 n).
    """

    name = "gaussian_kl"

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        m = self._moments(samples, reference, target)
        if m is None:
            return float("nan")
        delta, W = m
        if len(samples) <= len(W):
            return float("inf")
        mu = torch.linalg.eigvalsh(W)
        if not mu[0] > len(mu) * torch.finfo(mu.dtype).eps * mu[-1]:
            return float("inf")
        e = mu - 1
        return float(0.5 * ((e - torch.log1p(e)).sum() + delta @ delta))
