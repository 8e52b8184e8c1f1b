"""Exact quantities of a Gaussian mixture, shared by the ``gaussian`` and ``gmm`` targets.

Each component k is N(mu_k, U_k diag(lam_k) U_k^T); ``U`` is None when every component is
axis-aligned (then no matrix products are needed). Convolving with N(0, sigma^2 I) adds sigma^2 to
every eigenvalue, so noisy scores and curvature cost no factorisation per call. Arrays are laid out
component-first: (K, n, d).
"""

from __future__ import annotations

import math

import torch


def _noisy(lam: torch.Tensor, sigma) -> torch.Tensor:
    return lam + torch.as_tensor(sigma, dtype=lam.dtype, device=lam.device) ** 2


def _terms(x, log_w, means, U, lam):
    """Joint log densities log w_k + log N_k(x), shape (K, n), and g_k = -P_k (x - mu_k), (K, n, d)."""
    diff = x[None] - means[:, None]
    g = -diff / lam[:, None] if U is None else -(diff @ _precision(U, lam))  # one product, not two
    maha = -(diff * g).sum(-1)
    joint = log_w[:, None] - 0.5 * (maha + torch.log(lam).sum(-1)[:, None] + x.shape[-1] * math.log(2 * math.pi))
    return joint, g


def _precision(U, lam):
    """P_k = U_k diag(1 / lam_k) U_k^T, (K, d, d): d^3 work per call against n d^2 for the product."""
    return (U / lam[:, None]) @ U.transpose(-1, -2)


def _responsibilities(joint):
    """softmax over components (dim 0), written out: torch's dim-0 softmax is slow on the CPU."""
    e = torch.exp(joint - joint.max(0, keepdim=True).values)
    return e / e.sum(0, keepdim=True)


def log_prob(x, log_w, means, U, lam, sigma=0.0):
    joint, _ = _terms(x, log_w, means, U, _noisy(lam, sigma))
    m = joint.max(0).values
    return m + torch.log(torch.exp(joint - m).sum(0))


def component_log_probs(x, log_w, means, U, lam, sigma=0.0):
    """(n, K): for assigning samples to components."""
    return _terms(x, log_w, means, U, _noisy(lam, sigma))[0].T


def score(x, log_w, means, U, lam, sigma=0.0):
    lam = _noisy(lam, sigma)
    if means.shape[0] == 1:  # one component: no densities to weigh, and the step loop's hot path
        if U is None:
            return (means[0] - x) / lam[0]  # = -(x - mu) / lam exactly, one pass fewer than negating
        return -((x - means[0]) @ _precision(U, lam)[0])
    joint, g = _terms(x, log_w, means, U, lam)
    return (_responsibilities(joint)[..., None] * g).sum(0)


def log_prob_and_score(x, log_w, means, U, lam, sigma=0.0):
    """(log p, score) from one pass over the components: the normalised joint densities that sum to
    p are the responsibilities that weight the score."""
    joint, g = _terms(x, log_w, means, U, _noisy(lam, sigma))
    m = joint.max(0, keepdim=True).values
    e = torch.exp(joint - m)
    total = e.sum(0)
    log_p = m[0] + torch.log(total)
    if g.shape[0] == 1:
        return log_p, g[0]
    return log_p, ((e / total)[..., None] * g).sum(0)


def hess_diag(x, log_w, means, U, lam, sigma=0.0):
    """diag of the Hessian of log p: sum_k r_k (g_k^2 - diag P_k) - s^2."""
    lam = _noisy(lam, sigma)
    joint, g = _terms(x, log_w, means, U, lam)
    diag_p = 1.0 / lam if U is None else torch.einsum("kde,ke->kd", U * U, 1.0 / lam)
    if g.shape[0] == 1:
        return torch.zeros_like(x) - diag_p[0]
    r = _responsibilities(joint)[..., None]
    s = (r * g).sum(0)
    return (r * (g * g - diag_p[:, None])).sum(0) - s * s


def sample(n, generator, weights, means, U, lam):
    k = torch.multinomial(weights, n, replacement=True, generator=generator)
    z = torch.randn((n, means.shape[-1]), generator=generator, device=means.device, dtype=means.dtype)
    out = torch.zeros_like(z)
    for j in range(means.shape[0]):  # a loop over components keeps memory at n * d
        y = z * lam[j].sqrt()
        out = torch.where((k == j)[:, None], means[j] + (y if U is None else y @ U[j].T), out)
    return out


def moments(weights, means, U, lam):
    eye = torch.eye(means.shape[-1], dtype=means.dtype, device=means.device)
    U = eye.expand(len(means), -1, -1) if U is None else U
    cov_k = torch.einsum("kde,ke,kfe->kdf", U, lam, U)
    mean = weights @ means
    second = torch.einsum("k,kdf->df", weights, cov_k + means[:, :, None] * means[:, None, :])
    return mean, second - mean[:, None] * mean[None, :]
