"""``mean_error`` and ``covariance_error``: how far the first two sample moments are from the truth.

The true moments are the target's exact ``mean`` and ``covariance`` where it provides them
(capability ``moments``), else those of the reference samples. Both errors are relative, so they
read the same across targets of different scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import as_matrix, finite, pair


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Unbiased sample covariance of the rows of ``x`` (n, d)."""
    xc = x - x.mean(0)
    return xc.T @ xc / (len(x) - 1)


def true_moments(reference: torch.Tensor, target, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and covariance (d, d) in float64 on ``device``: exact from the target when it has
    them, else estimated from the reference."""
    if "moments" in getattr(target, "provides", ()):
        mean, cov = target.mean, target.covariance
        d = mean.numel()
        return as_matrix(mean.reshape(1, d), device)[0], as_matrix(cov.reshape(d, d), device)
    y = as_matrix(reference, device)
    if len(y) < 2:
        raise ValueError("the target has no exact moments and the reference has fewer than 2 points")
    return y.mean(0), covariance(y)


@dataclass
class MeanError:
    """Error of the sample mean, normalised by the spread of the target:

        |mean(samples) - mu|_2 / sqrt(trace(Sigma)).

    For n exact samples its square has expectation 1/n, whatever the dimension or covariance.
    """

    name = "mean_error"

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        x, _ = pair(samples, reference)
        if not finite(x):
            return float("nan")
        mu, cov = true_moments(reference, target, x.device)
        return float((x.mean(0) - mu).norm() / cov.diagonal().sum().sqrt())


@dataclass
class CovarianceError:
    """Relative Frobenius error of the (unbiased) sample covariance: |C_hat - C|_F / |C|_F."""

    name = "covariance_error"

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        x, _ = pair(samples, reference)
        if len(x) < 2:
            raise ValueError("covariance_error needs at least 2 samples")
        if not finite(x):
            return float("nan")
        _, cov = true_moments(reference, target, x.device)
        return float((covariance(x) - cov).norm() / cov.norm())
