"""The chains' own spread as a preconditioner: M = C + jitter I, C the covariance over all chains.

With thousands of chains in parallel, their covariance at one moment estimates the target's
(affine-invariant ensembles, Garbuno-Inigo, Nüsken & Reich 2020; an ensemble mass matrix for MALA).
C is computed in float64: O(N d^2) dense, O(N d) for its diagonal. Chains are (N, d): flattened.
"""

from __future__ import annotations

import math

import torch

from .preconditioners import CholeskyMetric, DiagonalMetric, EigenMetric

COVARIANCES = ("dense", "diagonal")


def ensemble_covariance(x: torch.Tensor, diagonal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(x - m, C) for chains x (N, d): centred chains in x's dtype, and C = (x - m)^T (x - m) / N in
    float64, (d, d), or its diagonal (d,). O(N d^2), or O(N d)."""
    centred = x - x.mean(0)
    c = centred.double()
    return centred, (c.square().sum(0) if diagonal else c.T @ c) / len(x)


def ensemble_metric(x: torch.Tensor, covariance: str,
                    jitter: float) -> tuple[torch.Tensor, CholeskyMetric | DiagonalMetric]:
    """(x - m, M = C + jitter I) for chains x (N, d), M with a Cholesky root (a proposal's noise that
    maps as A L under a lower-triangular A)."""
    centred, c = ensemble_covariance(x, covariance == "diagonal")
    if covariance == "diagonal":
        return centred, DiagonalMetric((c + jitter).to(x.dtype))
    return centred, CholeskyMetric.from_covariance(c, jitter, x.dtype)


def ensemble_mass_matrix(x: torch.Tensor, covariance: str, jitter: float) -> EigenMetric | DiagonalMetric:
    """M = C + jitter I from the chains x (N, d), in x's dtype, in eigen-form (``inv_quad`` for a
    Metropolis ratio). ``torch.linalg.eigh`` synchronises with the host on CUDA."""
    _, c = ensemble_covariance(x, covariance == "diagonal")
    if covariance == "diagonal":
        return DiagonalMetric((c + jitter).to(x.dtype))
    m = EigenMetric.from_covariance(c, jitter)  # eigh in float64
    return EigenMetric(m.basis.to(x.dtype), m.scale.to(x.dtype))


def check_ensemble_fields(covariance: str, jitter: float) -> None:
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {', '.join(COVARIANCES)}, got {covariance!r}")
    if not (jitter >= 0 and math.isfinite(jitter)):
        raise ValueError(f"jitter must be >= 0 (added to the ensemble covariance, in units of x^2), got {jitter}")


def check_ensemble_size(n: int, d: int, covariance: str, jitter: float) -> None:
    """With N <= d chains (N < 2 for the diagonal) C is singular: jitter must make M positive definite."""
    if jitter == 0 and (n < 2 if covariance == "diagonal" else n <= d):
        need = "at least 2 chains" if covariance == "diagonal" else f"more than d = {d} chains"
        raise ValueError(f"jitter = 0 needs {need} for a nonsingular ensemble covariance, got {n} chains; "
                         "set jitter > 0")
