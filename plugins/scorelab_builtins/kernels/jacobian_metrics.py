"""Preconditioners from the score Jacobian J, per chain or shared, as ``EigenMetric``s:

    M = U diag(1 / (max(lam, floor) + damping)) U^T + m_rest (I - U U^T),    H = U diag(lam) U^T ~ -J

- ``dense_metric``: d JVPs with the unit vectors give J; H = -(J + J^T) / 2, eigendecomposed.
- ``nystrom_metric``: a randomised Nyström approximation of -J from k JVPs (Halko, Martinsson &
  Tropp 2011; Tropp, Yurtsever, Udell & Cevher 2017, Alg. 3), its core factorised by eigh so that an
  indefinite -J cannot break it; m_rest is the step of the least stiff captured direction (Frangella,
  Tropp & Udell 2023). ``lowrank_langevin``'s docstring derives each step.
- ``learned_metric``: a model's learned diag J, one NFE; M diagonal.

Curvature below ``floor`` is raised to it, so M <= 1 / (floor + damping) (``capped_fraction`` counts
the directions at that cap). ``shared``: one M from the curvature averaged over the chains, diverged
chains left out. The score at x comes free with the first product.
"""

from __future__ import annotations

import math

import torch

from .preconditioners import EigenMetric

CAP_TOLERANCE = 1e-3  # a direction counts as capped when M is within 0.1 % of 1 / (floor + damping)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _finite(a: torch.Tensor) -> torch.Tensor:
    """``a`` (n, d, k) with every chain holding a NaN or inf zeroed: such a chain has diverged already (its x
    is not finite either, and the runner records it), and torch.linalg raises on a non-finite matrix."""
    return torch.where(torch.isfinite(a).flatten(1).all(1)[:, None, None], a, torch.zeros_like(a))


def capped_fraction(metric: EigenMetric, floor: float, damping: float) -> torch.Tensor:
    """Fraction of the d directions (over all chains) where M is at its cap 1 / (floor + damping)."""
    cap = (1 - CAP_TOLERANCE) / (floor + damping)
    d, k = metric.basis.shape[-2], metric.scale.shape[-1]
    count = (metric.scale >= cap).to(metric.scale.dtype).sum(-1)
    if metric.rest is not None:
        count = count + (d - k) * (metric.rest >= cap).to(metric.scale.dtype)
    return (count / d).mean()


def _pooled(a: torch.Tensor) -> torch.Tensor:
    """The mean over chains of ``a`` (n, ...), kept as one chain (1, ...); chains holding a NaN or inf
    (diverged already) are left out of it."""
    ok = torch.isfinite(a).flatten(1).all(1)
    weights = (ok.to(a.dtype) / ok.sum().clamp(min=1)).reshape((-1,) + (1,) * (a.ndim - 1))
    return (torch.where(ok.reshape(weights.shape), a, torch.zeros_like(a)) * weights).sum(0, keepdim=True)


def _one(metric: EigenMetric) -> EigenMetric:
    """A metric computed for one pooled chain, as the metric every chain shares."""
    return EigenMetric(metric.basis[0], metric.scale[0], None if metric.rest is None else metric.rest[0])


def dense_metric(oracle, x: torch.Tensor, floor: float, damping: float,
                 shared: bool = False) -> tuple[torch.Tensor, EigenMetric]:
    """(s(x), M) from the full score Jacobian: d JVPs with the unit vectors. Per chain, or (``shared``)
    from the Jacobian averaged over the chains."""
    n, d = x.shape[0], x[0].numel()
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    columns = []
    for i in range(d):
        s, jv = oracle.jvp(x, eye[i].expand(n, d).reshape(x.shape))
        columns.append(_flat(jv))
    J = torch.stack(columns, dim=-1)  # (n, d, d), column i = J e_i
    if shared:
        return s, _one(EigenMetric.from_precision(_pooled(-0.5 * (J + J.transpose(-1, -2))), floor, damping))
    return s, EigenMetric.from_precision(_finite(-0.5 * (J + J.transpose(-1, -2))), floor, damping)


def nystrom_metric(oracle, x: torch.Tensor, rank: int, floor: float, damping: float,
                   generator: torch.Generator, shared: bool = False) -> tuple[torch.Tensor, EigenMetric]:
    """(s(x), M) from a randomised Nystrom approximation of -J with ``rank`` JVPs, per chain, or
    (``shared``) of -J averaged over the chains with one test matrix (see the module docstring for the
    algorithm and how an indefinite -J is handled)."""
    n, d = x.shape[0], x[0].numel()
    omega = torch.randn((1 if shared else n, d, rank), generator=generator, device=x.device, dtype=x.dtype)
    omega = torch.linalg.qr(omega).Q.expand(n, d, rank)  # orthonormal columns: a well-conditioned core
    columns = []
    for j in range(rank):
        s, jv = oracle.jvp(x, omega[:, :, j].reshape(x.shape))
        columns.append(-_flat(jv))
    Y = torch.stack(columns, dim=-1)  # (n, d, k) = -J Omega
    Y, omega = (_pooled(Y), omega[:1]) if shared else (_finite(Y), omega)
    nu = math.sqrt(d) * torch.finfo(x.dtype).eps * Y.flatten(1).norm(dim=1)[:, None, None]
    Y = _finite(Y + nu * omega)  # (an overflowing |Y| makes nu infinite: that chain has diverged)
    core = omega.transpose(-1, -2) @ Y
    w, V = torch.linalg.eigh(0.5 * (core + core.transpose(-1, -2)))
    keep = w > nu[:, :, 0]
    inv_sqrt = torch.where(keep, w.clamp(min=torch.finfo(x.dtype).tiny).rsqrt(), torch.zeros_like(w))
    U, sigma, _ = torch.linalg.svd(Y @ (V * inv_sqrt[:, None, :]), full_matrices=False)
    lam = (sigma.square() - nu[:, :, 0]).clamp(min=floor)
    scale = 1.0 / (lam + damping)
    metric = EigenMetric(U, scale, scale.amax(-1))  # m_rest: the step of the least stiff captured direction
    return s, _one(metric) if shared else metric


def learned_metric(oracle, x: torch.Tensor, floor: float, damping: float,
                   shared: bool = False) -> tuple[torch.Tensor, EigenMetric]:
    """(s(x), diagonal M) from a model's second-order head: 1 NFE. Per chain, or (``shared``) from the
    diagonal averaged over the chains."""
    s, diag = oracle.score_and_learned_diag(x)
    curvature = -_flat(diag)
    if shared:
        curvature = _pooled(curvature)[0]
    basis = torch.eye(x[0].numel(), dtype=x.dtype, device=x.device)  # the coordinate axes, for every chain
    return s, EigenMetric(basis, 1.0 / (curvature.clamp(min=floor) + damping))
