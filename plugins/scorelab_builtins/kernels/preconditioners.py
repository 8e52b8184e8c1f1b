"""Preconditioners M for the Langevin integrators and the Metropolis correction ("metrics").

``EigenMetric`` holds a positive definite M in eigen-form,

    M = U diag(m) U^T + m_rest (I - U U^T)

with U (.., d, k) orthonormal columns, m (.., k) > 0 and m_rest (..) > 0 for the directions U does
not span (absent when k = d). Leading batch dimensions are per chain (n, d, k) or absent (d, k) for
one preconditioner shared by every chain. In this form M v, M^(1/2) z and r^T M^-1 r each cost two
products with U, with no factorisation per step, and a dense (k = d), low-rank plus isotropic (k <
d) or ensemble-covariance preconditioner is the same object. Two lighter forms have the same methods:
``DiagonalMetric`` (M = diag(m)) and ``CholeskyMetric`` (M = L L^T with L lower triangular,
whose noise L z maps as A L under a lower-triangular change of variables A: what an affine-invariant
ensemble needs; it has no ``inv_quad``, so it serves a proposal but not a Metropolis ratio).

A metric's methods: ``mul`` (M v), ``sqrt_mul`` (M^(1/2) z, a draw from N(0, M) for z ~ N(0, I)),
``inv_quad`` (r^T M^-1 r per chain) and ``mean_scale`` (tr(M) / d, a diagnostic). States are (n, d):
chains flattened.

RMSprop's diagonal, G = 1 / (damping + sqrt(V)) with V a running average of s(x)^2, is here too, as
tensors (a diagonal M is a tensor broadcast against the chains for ``euler_maruyama``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class EigenMetric:
    basis: torch.Tensor  # U: (n, d, k) or (d, k), orthonormal columns
    scale: torch.Tensor  # m: (n, k) or (k,), M's eigenvalues along U
    rest: torch.Tensor | None = None  # m_rest: (n,) or (), M on the complement of U; None when k = d

    @classmethod
    def from_precision(cls, precision: torch.Tensor, floor: float, damping: float) -> EigenMetric:
        """M = (clip(H) + damping I)^-1 from a symmetric estimate H of -J (the negative score Jacobian,
        (n, d, d) or (d, d)): eigenvalues below ``floor`` are raised to it, so M is positive definite
        and bounded by 1 / (floor + damping) even where log p is not concave."""
        lam, U = torch.linalg.eigh(0.5 * (precision + precision.transpose(-1, -2)))
        return cls(U, 1.0 / (lam.clamp(min=floor) + damping))

    @classmethod
    def from_covariance(cls, covariance: torch.Tensor, jitter: float) -> EigenMetric:
        """M = covariance + jitter I (an ensemble's spread used as the preconditioner)."""
        lam, U = torch.linalg.eigh(0.5 * (covariance + covariance.transpose(-1, -2)))
        return cls(U, lam.clamp(min=0) + jitter)

    def _coords(self, v: torch.Tensor) -> torch.Tensor:
        """U^T v per chain: (n, k)."""
        return v @ self.basis if self.basis.ndim == 2 else torch.einsum("ndk,nd->nk", self.basis, v)

    def _back(self, c: torch.Tensor) -> torch.Tensor:
        """U c per chain: (n, d)."""
        return c @ self.basis.T if self.basis.ndim == 2 else torch.einsum("ndk,nk->nd", self.basis, c)

    def _rest(self) -> torch.Tensor:
        """m_rest, shaped to broadcast against (n, d)."""
        return self.rest if self.rest.ndim == 0 else self.rest[:, None]

    def _apply(self, v: torch.Tensor, power: float) -> torch.Tensor:
        """M^power v (power 1, 1/2 or -1)."""
        c = self._coords(v)
        along = self._back(c * self.scale**power)
        if self.rest is None:
            return along
        r = self._rest() ** power
        return along + r * (v - self._back(c))

    def mul(self, v: torch.Tensor) -> torch.Tensor:
        """M v."""
        return self._apply(v, 1.0)

    def sqrt_mul(self, z: torch.Tensor) -> torch.Tensor:
        """M^(1/2) z: with z ~ N(0, I), a draw from N(0, M)."""
        return self._apply(z, 0.5)

    def inv_quad(self, r: torch.Tensor) -> torch.Tensor:
        """r^T M^-1 r per chain: (n,)."""
        c = self._coords(r)
        total = (c * c / self.scale).sum(-1)
        if self.rest is None:
            return total
        perp = r.square().sum(-1) - c.square().sum(-1)
        return total + perp.clamp(min=0) / self.rest  # rest is (n,) or (), like perp

    def mean_scale(self) -> torch.Tensor:
        """tr(M) / d averaged over chains: a diagnostic of the step M gives each direction."""
        d = self.basis.shape[-2]
        trace = self.scale.sum(-1)
        if self.rest is not None:
            trace = trace + (d - self.scale.shape[-1]) * self.rest
        return (trace / d).mean()


@dataclass
class DiagonalMetric:
    """M = diag(scale), with EigenMetric's methods."""

    scale: torch.Tensor  # (d,) shared by every chain, or (n, d) one per chain

    def mul(self, v: torch.Tensor) -> torch.Tensor:
        return v * self.scale

    def sqrt_mul(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale.sqrt()

    def inv_quad(self, r: torch.Tensor) -> torch.Tensor:
        return (r.square() / self.scale).sum(-1)

    def mean_scale(self) -> torch.Tensor:
        return self.scale.mean()


@dataclass
class CholeskyMetric:
    """M = L L^T with L lower triangular: M v, and L z for the noise (a root that maps as A L under a
    lower-triangular A). Enough for a proposal; no ``inv_quad``, so not for a Metropolis ratio."""

    matrix: torch.Tensor  # M (d, d)
    factor: torch.Tensor  # L (d, d)

    @classmethod
    def from_covariance(cls, covariance: torch.Tensor, jitter: float, dtype: torch.dtype) -> CholeskyMetric:
        """M = covariance + jitter I, factorised in the covariance's dtype and returned in ``dtype``; a
        failed factorisation (M not positive definite in floating point) gives a NaN factor."""
        m = covariance + jitter * torch.eye(len(covariance), dtype=covariance.dtype, device=covariance.device)
        factor, info = torch.linalg.cholesky_ex(m)  # no error check: that would synchronise on CUDA
        factor = torch.where(info == 0, factor, math.nan)
        return cls(m.to(dtype), factor.to(dtype))

    def mul(self, v: torch.Tensor) -> torch.Tensor:
        return v @ self.matrix  # symmetric

    def sqrt_mul(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.factor.T

    def mean_scale(self) -> torch.Tensor:
        return self.matrix.diagonal().mean()



def rmsprop_average(v: torch.Tensor | None, s: torch.Tensor, alpha: float) -> torch.Tensor:
    """V <- alpha V + (1 - alpha) s^2. V starts at the mean of s^2 over chains: a chain that starts
    where its own score is nearly zero would otherwise take a step of size ~ 1 / damping."""
    if v is None:
        return (s * s).mean(0, keepdim=True).expand_as(s)
    return alpha * v + (1 - alpha) * s * s


def rmsprop_preconditioner(v: torch.Tensor, damping: float) -> torch.Tensor:
    """G = 1 / (damping + sqrt(V))."""
    return 1.0 / (damping + v.sqrt())


def rmsprop_divergence(v: torch.Tensor, g: torch.Tensor, s: torch.Tensor, curvature: torch.Tensor,
                       alpha: float) -> torch.Tensor:
    """Gamma_i = d G_i / d x_i = -G_i^2 (1 - alpha) s_i J_ii / sqrt(V_i), with J_ii = -curvature_i: the
    drift term of G's dependence on this step's s(x)^2 (|s_i| <= sqrt(V_i / (1 - alpha)))."""
    root = v.sqrt().clamp(min=torch.finfo(v.dtype).tiny)
    return g * g * (1 - alpha) * s * curvature / root
