"""``ozaki_langevin``: the local-linearisation (Ozaki) step, with diagonal curvature.

Over a step of length h, linearise the drift around the current point, s(y) ~ s(x) + H (y - x),
with H = -diag(c) from the diagonal curvature c = -diag J (smoothed, clipped at zero, damped as in
``hessian_diag_langevin``), and integrate the linear Langevin SDE dy = (s(x) + H (y - x)) dt +
sqrt(2) dW exactly. Its Ornstein–Uhlenbeck solution gives, elementwise,

    x <- x + (1 - exp(-h c)) / c * s(x) + sqrt((1 - exp(-2 h c)) / c) * z,    z ~ N(0, I)

(mean x + (e^{hH} - I) H^{-1} s(x), covariance (e^{2hH} - I) H^{-1}). Where c -> 0 this is ULA
with step h; where h c >> 1 it jumps straight to N(x + s/c, 1/c), the local Gaussian fit.

Cost per step: as ``hessian_diag_langevin`` (1 NFE; a refresh every ``refresh_every`` steps costs
``probes`` VJPs/JVPs, or 1 NFE + 1 CURV exact, or 1 NFE learned; the first step pays one more).

Known bias. On a Gaussian whose covariance is diagonal, with exact curvature and damping -> 0, the
linearisation is exact and the step samples the target exactly for any h: each coordinate follows
x_i - mu_i <- e^{-h/v_i} (x_i - mu_i) + sqrt(v_i (1 - e^{-2h/v_i})) z_i. The damping shrinks the
variance slightly (to 1/(1/v_i + damping) in the limit h -> infinity). When the Hessian is not
diagonal (a rotated Gaussian) the off-diagonal coupling is ignored: the scheme is no longer exact,
and for large h it becomes a diagonal Newton step x <- x + M s(x), which diverges when
lambda_max(M^1/2 P M^1/2) > 2 (never in 2-D; 6.2 on the rotated d = 50, kappa = 1000 Gaussian), so h
must again be small. On non-Gaussian targets the bias is O(h) from the
curvature's variation; clipping and damping add their own.

References: T. Ozaki (1992), "A bridge between nonlinear time series models and nonlinear
stochastic dynamical systems: a local linearization approach", Statistica Sinica 2, 113–135;
I. Shoji & T. Ozaki (1998) for the SDE scheme.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..kernels import CurvatureOptions, CurvatureState, clipped_fraction, local_linearisation, normal_like

OzakiState = CurvatureState  # shared with hessian_diag_langevin: x, score, curvature (-diag J, smoothed), k


@dataclass
class OzakiInfo:
    step_size: float
    contraction: torch.Tensor  # mean of exp(-h c): 0 means one step forgets the start entirely
    clipped: torch.Tensor  # fraction of coordinates whose curvature was clipped at zero


@dataclass
class OzakiLangevin(CurvatureOptions):
    step_size: float = 0.5  # time h (units of x^2) of the exactly solved linear SDE; h c >> 1 jumps to N(x + s/c, 1/c)

    name = "ozaki_langevin"

    def stationary_variance(self, variance: float) -> float:
        """Its variance on N(mu, variance) in an axis-aligned Gaussian (every curvature source exact there):
        x - mu <- a (x - mu) + sqrt(q) z with a = 1 - gain / variance, so variance q / (1 - a^2); exactly
        ``variance`` when damping = 0."""
        c = 1 / variance + self.damping
        gain, q = -math.expm1(-self.step_size * c) / c, -math.expm1(-2 * self.step_size * c) / c
        a = 1 - gain / variance
        return q / (1 - a * a)

    def init(self, x0: torch.Tensor, oracle, budget: float) -> CurvatureState:
        return CurvatureState(x0, None, None, 0)  # the first step refreshes, with the run's generator

    def step(self, state: CurvatureState, oracle, generator: torch.Generator):
        state = self._begin(state, oracle, generator)
        h, c = self.step_size, state.curvature.clamp(min=0) + self.damping
        x = local_linearisation(state.x, state.score, c, h, normal_like(state.x, generator))
        info = OzakiInfo(h, torch.exp(-h * c).mean(), clipped_fraction(state.curvature))
        return self._end(state, x, oracle, generator), info
