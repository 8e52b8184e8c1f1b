"""``hessian_diag_langevin``: Langevin preconditioned by the diagonal of the negative score Jacobian.

With c = -diag J (J = grad s, the Hessian of log p), smoothed, clipped at zero and damped, and
M = diag(1 / (max(c, 0) + damping)), the step is the Euler–Maruyama discretisation of the
preconditioned Langevin diffusion dx = M s(x) dt + sqrt(2M) dW:

    x <- x + h M s(x) + sqrt(2 h M) z,    z ~ N(0, I)

so the noise is scaled consistently with the drift (both by M; h is dimensionless, a fraction of
each coordinate's curvature scale). The curvature comes from ``curvature``: a Hutchinson estimate
with ``probes`` Rademacher probes (VJPs, or JVPs), the target's exact diagonal, or a model's learned
second-order head (see ``kernels.curvature``). It is refreshed every ``refresh_every`` steps, at the point
the chain has reached, and smoothed across refreshes with weight ``ema`` on the old value.

Cost per step: 1 NFE; a refresh step instead costs ``probes`` VJPs (the score comes free with the
first), or 1 NFE + 1 CURV (exact), or 1 NFE (learned). ``init`` evaluates nothing: the first step
pays for one more refresh, at the starting point, with the run's generator.

Known bias. Between refreshes this is ULA with a fixed preconditioner: on an axis-aligned Gaussian
with exact curvature, every coordinate has effective step h_i = h M_i and stationary variance
v_i / (1 - h M_i / (2 v_i)), i.e. v_i / (1 - h / 2) when damping << 1 / v_i; stable for h < 2 (up
to damping). M depends on where the chain was at its last refresh, and the drift omits the
divergence term of a position-dependent preconditioner, so on a non-Gaussian target there is an
additional O(h) bias; clipping and damping add their own where curvature is small or negative. A
diagonal cannot undo correlations: on a rotated ill-conditioned Gaussian the step is still bounded
by the largest eigenvalue of M^(1/2) P M^(1/2) and most of the gain is lost. There, too, a
Hutchinson probe's noise (standard deviation sqrt(sum_{j != i} J_ij^2)) exceeds the diagonal it
estimates (1.1 to 2.2 times, median 1.5, on the rotated d = 50, kappa = 1000 Gaussian); clipped coordinates get
M = 1 / damping and the chain diverges, even with 8 probes. More probes, a longer ``ema`` or a
larger ``damping`` trade that against the gain.

Reference: preconditioned Langevin (Girolami & Calderhead 2011, constant-metric case); Hutchinson
(1989) for the diagonal estimator; Li, Chen, Carlson & Carin (2016) for diagonal preconditioners in
Langevin samplers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..kernels import CurvatureOptions, CurvatureState, clipped_fraction, euler_maruyama, inverse_curvature, normal_like

HessianDiagState = CurvatureState  # shared with ozaki_langevin: x, score, curvature (-diag J, smoothed), k


@dataclass
class HessianDiagInfo:
    step_size: float
    preconditioner: torch.Tensor  # mean of M over coordinates and chains
    clipped: torch.Tensor  # fraction of coordinates whose curvature was clipped at zero


@dataclass
class HessianDiagLangevin(CurvatureOptions):
    step_size: float = 0.1  # h in x + h M s(x) + sqrt(2hM) z; dimensionless (M carries the scale), stable for h < 2

    name = "hessian_diag_langevin"

    def stationary_variance(self, variance: float) -> float:
        """Its variance on N(mu, variance) in an axis-aligned Gaussian, where every curvature source is
        exact (Hutchinson included): ULA's at the effective step h M."""
        m = 1 / (1 / variance + self.damping)
        return variance / (1 - self.step_size * m / (2 * variance))

    def init(self, x0: torch.Tensor, oracle, budget: float) -> CurvatureState:
        return CurvatureState(x0, None, None, 0)  # the first step refreshes, with the run's generator

    def step(self, state: CurvatureState, oracle, generator: torch.Generator):
        state = self._begin(state, oracle, generator)
        h, m = self.step_size, inverse_curvature(state.curvature, self.damping)
        x = euler_maruyama(state.x, state.score, h, normal_like(state.x, generator), m)
        return self._end(state, x, oracle, generator), HessianDiagInfo(h, m.mean(), clipped_fraction(state.curvature))
