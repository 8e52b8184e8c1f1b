"""``rmsprop_langevin``: Langevin with an RMSprop diagonal preconditioner (pSGLD).

Each chain keeps a running average of its squared scores and preconditions with its inverse root:

    V <- alpha V + (1 - alpha) s(x)^2,    G = 1 / (damping + sqrt(V))
    x <- x + h (G s(x) + Gamma) + sqrt(2 h G) z,    z ~ N(0, I)

(pSGLD's epsilon is 2h here, so that h means what it means for ``langevin``.) V starts at the mean
of s(x0)^2 over chains, not at zero as in the paper: at zero (or at a single chain's s^2 near a
mode) the first step is of size ~ 1 / damping.
Gamma_i = d G_i / d x_i is the correction for a preconditioner that depends on the position; since
G depends on x only through this step's s(x)^2,

    Gamma_i = -G_i^2 (1 - alpha) s_i J_ii / sqrt(V_i),

which needs the diagonal J_ii of the score Jacobian: ``correction`` picks its source (``none``,
as most implementations do, or ``hutchinson``/``exact``/``learned`` as in ``kernels.curvature``).

Cost per step: 1 NFE without the correction; with it, ``probes`` VJPs (Hutchinson; the score comes
free) or 1 NFE + 1 CURV (exact) or 1 NFE (learned). One more such evaluation starts the chain: in
``init`` (1 NFE) without the correction, else in the first step (its probes need the run's generator).

Known bias. With V frozen this is ULA with the fixed preconditioner G: on an axis-aligned Gaussian
coordinate i of variance v_i has effective step h_i = h G_i and stationary variance
v_i / (1 - h G_i / (2 v_i)). At stationarity V_i -> E[s_i^2] = var_i / v_i^2, so G_i ~ v_i /
sqrt(var_i) ~ sqrt(v_i): the preconditioner equalises the square roots of the scales, not the
scales. That fixed-G value is the known bias when V averages over much longer than the chain's
mixing time (alpha -> 1; the tests check it at alpha = 0.999). With a short memory V follows the
chain's own recent scores, steps grow where the score happens to be small, and the bias is far
larger: on a rotated 2-D Gaussian (condition number 4, h = 0.02, alpha = 0.9) the covariance comes
out about 60 % too large against 1 % for the fixed G, and the Gamma term, which accounts only for
the current score's share of V, brings it to about 50 %.

Reference: C. Li, C. Chen, D. Carlson & L. Carin (2016), "Preconditioned stochastic gradient
Langevin dynamics for deep neural networks", AAAI (Algorithm 1; defaults alpha = 0.99, lambda =
1e-5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..kernels import (
    euler_maruyama,
    normal_like,
    rmsprop_average,
    rmsprop_divergence,
    rmsprop_preconditioner,
    score_and_curvature,
)
from ..kernels.curvature import REQUIRES, SOURCES


@dataclass
class RmspropState:
    x: torch.Tensor
    score: torch.Tensor
    v: torch.Tensor | None  # running average of s^2 (None until the first step)
    curvature: torch.Tensor | None  # -diag J at x, when the correction needs it


@dataclass
class RmspropInfo:
    step_size: float
    preconditioner: torch.Tensor  # mean of G
    correction: torch.Tensor  # mean |Gamma| / mean |G s|: how much the correction matters


@dataclass
class RmspropLangevin:
    step_size: float = 1e-3  # h in x + h (G s + Gamma) + sqrt(2hG) z (pSGLD's epsilon = 2h); effective step h G
    alpha: float = 0.99  # weight of the old V in V <- alpha V + (1 - alpha) s^2, in [0, 1); near 1: less bias
    damping: float = 1e-5  # lambda in G = 1 / (damping + sqrt(V)), > 0; bounds G by 1 / damping
    correction: Literal["none", "hutchinson", "exact", "learned"] = "none"  # J_ii source for Gamma; none: Gamma = 0
    probes: int = 1  # Rademacher probes (VJPs) per step when correction is hutchinson, >= 1

    name = "rmsprop_langevin"
    requires = ()
    chains_interact = True  # V starts at the chains' mean s^2
    example_params = {"step_size": 0.05}  # the default suits unit-scale targets slowly; the kit's budget is short

    def __post_init__(self):
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0, got {self.step_size}")
        if not 0 <= self.alpha < 1:
            raise ValueError(f"alpha must be in [0, 1), got {self.alpha}")
        if not self.damping > 0:
            raise ValueError(f"damping must be > 0 (it bounds G by 1/damping), got {self.damping}")
        if self.correction not in ("none", *SOURCES):
            raise ValueError(f"correction must be one of none, {', '.join(SOURCES)}, got {self.correction!r}")
        if self.probes < 1:
            raise ValueError(f"probes must be >= 1, got {self.probes}")
        self.requires = () if self.correction == "none" else REQUIRES[self.correction]

    def init(self, x0: torch.Tensor, oracle, budget: float) -> RmspropState:
        if self.correction == "none":
            return RmspropState(x0, oracle.score(x0), None, None)
        return RmspropState(x0, None, None, None)  # the first step evaluates, with the run's generator

    def _evaluate(self, oracle, x, generator):
        if self.correction == "none":
            return oracle.score(x), None
        return score_and_curvature(oracle, x, None, self.correction, probes=self.probes, generator=generator)

    def step(self, state: RmspropState, oracle, generator: torch.Generator):
        if state.score is None:
            s, c = self._evaluate(oracle, state.x, generator)
            state = RmspropState(state.x, s, None, c)
        h = self.step_size
        v = rmsprop_average(state.v, state.score, self.alpha)
        g = rmsprop_preconditioner(v, self.damping)
        drift = g * state.score
        if state.curvature is None:
            gamma = torch.zeros_like(drift)
        else:
            gamma = rmsprop_divergence(v, g, state.score, state.curvature, self.alpha)
        x = euler_maruyama(state.x, state.score, h, normal_like(state.x, generator), g, divergence=gamma)
        s, c = self._evaluate(oracle, x, generator)
        info = RmspropInfo(h, g.mean(), gamma.abs().mean() / drift.abs().mean().clamp(min=torch.finfo(x.dtype).tiny))
        return RmspropState(x, s, v, c), info
