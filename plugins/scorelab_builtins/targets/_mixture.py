"""Exact quantities of a Gaussian mixture, shared by the ``gaussian`` and ``gmm`` targets.

Each component k is N(mu_k, U_k diag(lam_k) U_k^T). Convolving with N(0, sigma^2 I) adds sigma^2 to
every eigenvalue, so noisy scores and curvature cost no factorisation per call.
"""

from __future__ import annotations

import math

import torch


def _noisy(lam: torch.Tensor, sigma) -> torch.Tensor:
    return lam + torch.as_tensor(sigma, dtype=lam.dtype, device=lam.device) ** 2


def _terms(x, log_w, means, U, lam):
    """Per-component joint log densities (n, K) and scores g_k = -P_k (x - mu_k), shape (n, K, d)."""
    y = torch.einsum("nkd,kde->nke", x[:, None, :] - means, U)  # coordinates in each eigenbasis
    maha = (y * y / lam).sum(-1)
    joint = log_w - 0.5 * (maha + torch.log(lam).sum(-1) + x.shape[-1] * math.log(2 * math.pi))
    g = -torch.einsum("nke,kde->nkd", y / lam, U)
    return joint, g


def log_prob(x, log_w, means, U, lam, sigma=0.0):
    joint, _ = _terms(x, log_w, means, U, _noisy(lam, sigma))
    return torch.logsumexp(joint, -1)


def component_log_probs(x, log_w, means, U, lam, sigma=0.0):
    return _terms(x, log_w, means, U, _noisy(lam, sigma))[0]


def score(x, log_w, means, U, lam, sigma=0.0):
    joint, g = _terms(x, log_w, means, U, _noisy(lam, sigma))
    r = torch.softmax(joint, -1)
    return torch.einsum("nk,nkd->nd", r, g)


def hess_diag(x, log_w, means, U, lam, sigma=0.0):
    """diag of the Hessian of log p: sum_k r_k (g_k^2 - diag P_k) - s^2."""
    lam = _noisy(lam, sigma)
    joint, g = _terms(x, log_w, means, U, lam)
    r = torch.softmax(joint, -1)
    s = torch.einsum("nk,nkd->nd", r, g)
    diag_p = torch.einsum("kde,ke->kd", U * U, 1.0 / lam)
    return torch.einsum("nk,nkd->nd", r, g * g - diag_p) - s * s


def sample(n, generator, weights, means, U, lam):
    k = torch.multinomial(weights, n, replacement=True, generator=generator)
    z = torch.randn((n, means.shape[-1]), generator=generator, device=means.device, dtype=means.dtype)
    out = torch.zeros_like(z)
    for j in range(means.shape[0]):  # a loop over components keeps memory at n * d
        out = torch.where((k == j)[:, None], means[j] + (z * lam[j].sqrt()) @ U[j].T, out)
    return out


def moments(weights, means, U, lam):
    cov_k = torch.einsum("kde,ke,kfe->kdf", U, lam, U)
    mean = weights @ means
    second = torch.einsum("k,kdf->df", weights, cov_k + means[:, :, None] * means[:, None, :])
    return mean, second - mean[:, None] * mean[None, :]
