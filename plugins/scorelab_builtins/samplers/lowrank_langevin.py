"""``lowrank_langevin``: Langevin preconditioned by dense or low-rank-plus-isotropic curvature, paid in JVPs.

Every ``refresh_every`` steps each chain estimates the curvature H ~ -J at the point it has reached
(J = grad s, the Hessian of log p), H ~ U diag(lam) U^T, and turns it into a positive definite
preconditioner (``kernels.EigenMetric``), held fixed until the next refresh:

    M = U diag(1 / (max(lam, floor) + damping)) U^T + m_rest (I - U U^T)

Each step is the preconditioned Langevin proposal

    y = x + h M s(x) + sqrt(2h) M^(1/2) z,    z ~ N(0, I)

taken as it is (``adjust=False``: ULA with a preconditioner), or (``adjust=True``) accepted with the
Metropolis-Hastings probability, with the same M in both directions:

    log a = log p(y) - log p(x) + log q(x | y) - log q(y | x)
    log q(b | a) = -(b - a - h M s(a))^T M^-1 (b - a - h M s(a)) / (4h)

A proposal whose log density or score is NaN or infinite is rejected. When adjusting, a refresh
happens after the accept step, at the point the chain then holds.

Where H comes from (``curvature``, ``rank``), per chain:

- ``"jvp"``, ``rank=None`` or rank >= d: dense. d JVPs with the unit vectors e_i give J column by
  column; H = -(J + J^T) / 2 and M = ``EigenMetric.from_precision(H, floor, damping)`` (no m_rest).
- ``"jvp"``, ``rank=k < d``: randomised Nystrom with k JVPs (Halko, Martinsson & Tropp 2011; Tropp,
  Yurtsever, Udell & Cevher 2017, Alg. 3). A Gaussian test matrix Omega (d, k), drawn per chain from
  the run's generator and orthonormalised; Y = -J Omega; the shift nu = sqrt(d) eps |Y|_F, Y_nu = Y +
  nu Omega; the core Omega^T Y_nu = V diag(w) V^T; B = Y_nu V diag(w^-1/2) over the w > nu; the thin
  SVD B = U diag(sigma) (.); lam = sigma^2 - nu. Then U diag(lam) U^T is Y (Omega^T Y)^+ Y^T, the
  Nystrom approximation, when -J is positive semidefinite. The core is factorised by its
  eigendecomposition instead of Tropp's Cholesky so that an indefinite -J cannot break it: core
  directions with w <= nu (non-concave, or null) are left out of B, and come back as lam = -nu, i.e.
  at the floor. m_rest = 1 / (min lam + damping), lam clipped: the directions U does not span are
  treated as no stiffer than the least stiff captured one (Nystrom captures the top of the spectrum),
  so they get that step, never a larger one.
- ``"learned"``: a model's second-order head gives diag J with the score in one pass; M is diagonal
  (U = I), 1 / (max(-diag J, floor) + damping). ``rank`` does not apply.

``shared``: one M for every chain, from the curvature averaged over the chains (the dense -J, the
Nystrom sketch -J Omega with one test matrix, or the learned diagonal; a diverged chain is left out).
Each chain still pays its JVPs (the oracle's products are batched over chains), but a step multiplies
by one d x k matrix instead of n of them: on the d = 20 rotated Gaussian with 3000 chains, adjusted,
240 steps/s against 33 per chain (one CPU thread). On a Gaussian J is the same everywhere, so the
shared M is each chain's; elsewhere it is the chains' average curvature, and the chains interact
through it (``chains_interact`` follows ``shared``).

Non-concave regions. Eigenvalues of H below ``floor`` (flat directions, or directions where log p is
convex, between modes) are raised to it: M there is at its cap 1 / (floor + damping), the largest step
M gives; a clipped captured eigenvalue in the Nystrom case sets m_rest to the cap too. ``Info.capped``
is the fraction of directions at the cap. The cap must be a step the target can take, which is why
``floor`` is not 0 by default: on a two-mode mixture (modes at +-3, unit variances; -J = -8 across
the saddle) with floor = 0 the cap is 1000, adjusted chains started in the strip |x_1| < 0.4 propose
jumps of ~28 and 97 % of them never move in 190 steps (the refresh happens where they stand, so
nothing changes), while unadjusted ones are thrown out to |x| ~ 20 and beyond; with floor = 0.1 every
chain leaves the strip. On targets much wider than unit scale lower ``floor`` with their scale.

Defaults, for unit-scale targets such as the d = 50, condition number 1000 Gaussian (variances 1 to
1e-3). ``step_size=None`` means 0.1 unadjusted, 0.4 adjusted. Unadjusted, h = 0.1 puts every
stationary variance 1 / (1 - h/2) = 5.3 % high (inside a 10 % quality threshold) while each whitened
direction contracts by 0.9 a step. Adjusted, the bias is gone and the step is limited by acceptance
instead: on an exactly preconditioned Gaussian log a = -h (|y|^2 - |x|^2) / 4 in the whitened frame,
of mean -h^3 d / 4 at stationarity, so the best step falls as d^(-1/3) (Roberts & Rosenthal: about
1.4 d^(-1/3) for acceptance 0.574, 0.37 at d = 50). Measured at d = 50, h = 0.25, 0.35, 0.5 accept
0.76, 0.61, 0.38 of proposals at stationarity; from far out, where proposals shrink |x|, every move
is accepted and all three reach the target's moments in the same ~20 steps. h = 0.4 sits at the
optimum for d ~ 30-60 and accepts more in fewer dimensions.
``refresh_every=50``: a dense refresh at d = 50 is 50 JVPs (200 cost units at w_jvp = 4), as much as
the 50 steps it serves; on a Gaussian J is constant and the first refresh is all it takes. ``damping
= 1e-3`` (absolute, in the units of the curvature, 1 / variance) moves M by at most 0.1 % along any
direction of variance <= 1; ``floor = 0.1`` caps M at 9.9, the step of a direction of variance ~10,
and leaves every direction of variance < 10 alone (on the Gaussian above it changes nothing). There
is no step-size warm-up: h stays fixed, so the chains stay independent and the adjusted kernel is the
same from the first step (mala adapts its step by ``kernels.dual_averaging``).

Choosing ``rank``. Nystrom finds the top of the spectrum, and its estimates never exceed the true
eigenvalues. With exactly as many probes as stiff directions the estimates have a heavy tail (the
projection of Omega on the stiff subspace is now and then near singular): on 3 spikes of 1e4, 5e3,
2e3 over a bulk of ones, the median chain's are within 2 %, the 99th percentile's off by 30-100 %; a
too small lam_k makes m_rest too large, and the stiffness the sketch missed then sets the stable
step. Five probes more than stiff directions (Halko et al.'s oversampling) bring the 99th percentile
within 6 % and put m_rest on the bulk. Without a gap in the spectrum a low rank gains little (the
uncaptured directions all move at the step of the k-th stiffest) and unadjusted chains can become
unstable: on the d = 6, condition number 100 rotated Gaussian at rank 3, 0.8 % of the chains diverge
within 500 steps at h = 0.1 and 48 % at h = 0.4 (none at rank 10-40 on the d = 50 Gaussian at h =
0.1); the adjusted chain rejects those moves instead. This m_rest is the one of Nystrom
preconditioning for linear systems (Frangella, Tropp & Udell 2023).

Cost per step. Unadjusted: 1 NFE; a refresh step instead d JVPs (dense) or k JVPs (Nystrom), the
score coming free with the first, or 1 NFE (learned). ``init`` evaluates nothing; the first step pays
for a refresh at the start, with the run's generator. After K steps: NFE = K - floor(K/R) and
JVP = r (1 + floor(K/R)) (r = d or k, R = ``refresh_every``); learned, NFE = 1 + K. Adjusted: 1 NFE
(log p and s at the proposal), plus r JVPs (or 1 NFE, learned) on a refresh step; ``init`` 1 NFE.
After K steps: NFE = 1 + K, JVP = r (1 + floor(K/R)); learned, NFE = 2 + K + floor(K/R).

Known bias. Unadjusted on a Gaussian N(mu, Sigma) with exact dense curvature, the chain decouples
in Sigma's eigenbasis: a direction of variance v has effective step h m / v, m = 1 / (max(1/v, floor)
+ damping), stationary variance v / (1 - h m / (2v)), and the stationary covariance is Sigma / (1 -
h/2) when damping << 1/v; the mean is exact; stable for h < 2. With Nystrom (k < d) the directions
U does not span take m_rest, mostly smaller than 1/v: less bias there, slower mixing (no closed form
per coordinate, so ``stationary_variance`` is None). On other targets M follows
the chain and the drift omits the divergence term of a position-dependent preconditioner: an extra
O(h) bias. Adjusted, the chain is exactly invariant for any M that does not depend on the chain's
state: on a Gaussian J is constant, so the dense M is fixed and Nystrom's depends only on Omega.
Elsewhere M depends on where the chain was at its last refresh and the reverse move would need that
M too; the remaining bias vanishes where the curvature is constant over the chain's range, and a
``refresh_every`` longer than the run (M fixed at the start) removes it.

References: Girolami & Calderhead (2011), "Riemann manifold Langevin and Hamiltonian Monte Carlo",
JRSS B 73 (constant-metric case); Roberts & Tweedie (1996); Roberts & Rosenthal (1998), "Optimal
scaling of discrete approximations to Langevin diffusions", JRSS B 60; Halko, Martinsson & Tropp
(2011), "Finding structure with randomness", SIAM Review 53; Tropp, Yurtsever, Udell & Cevher
(2017), "Fixed-rank approximation of a positive-semidefinite matrix from streaming data", NeurIPS;
Frangella, Tropp & Udell (2023), "Randomized Nystrom preconditioning", SIAM J. Matrix Anal. Appl. 44.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from ..kernels import (
    EigenMetric,
    capped_fraction,
    dense_metric,
    euler_maruyama,
    learned_metric,
    metropolis_hastings,
    normal_like,
    nystrom_metric,
)

CURVATURES = ("jvp", "learned")
#: The capability each curvature source needs from the score source.
REQUIRES = {"jvp": (), "learned": ("second_order_head",)}
DEFAULT_STEP = {False: 0.1, True: 0.4}  # unadjusted, adjusted: see the module docstring


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


@dataclass
class LowRankState:
    x: torch.Tensor
    score: torch.Tensor | None  # s(x); None until the first step has evaluated it (unadjusted)
    log_prob: torch.Tensor | None  # (n,) log p(x) when adjusting, else None
    metric: EigenMetric | None  # M from the last refresh; None before the first
    capped: torch.Tensor | None  # 0-dim: fraction of directions at M's cap at the last refresh
    k: int  # steps taken


@dataclass
class LowRankInfo:
    step_size: float
    acceptance: torch.Tensor  # per chain: min(1, a); 1 when unadjusted
    preconditioner: torch.Tensor  # tr(M) / d, averaged over chains
    capped: torch.Tensor  # fraction of directions where M is at its cap 1 / (floor + damping)


@dataclass
class LowRankLangevin:
    step_size: float | None = None  # None: 0.1 unadjusted, 0.4 adjusted
    rank: int | None = None  # None (or >= d): dense curvature from d JVPs; k < d: Nystrom from k JVPs
    curvature: Literal["jvp", "learned"] = "jvp"  # H from JVPs (dense or Nystrom, per rank) or a model's diagonal head
    adjust: bool = False  # Metropolis-Hastings correction of each proposal (needs log p); False: preconditioned ULA
    refresh_every: int = 50  # steps between refreshes of M at each chain's point (d or rank JVPs, or 1 NFE), >= 1
    floor: float = 0.1  # curvature below it (flat, non-concave) is raised to it: M <= 1 / (floor + damping)
    damping: float = 1e-3  # added to the clipped curvature (1/variance units), > 0: M = 1 / (max(lam, floor) + damping)
    shared: bool = False  # one M for every chain, from the curvature averaged over them

    name = "lowrank_langevin"
    requires = ()
    chains_interact = False
    host_syncs = ("a refresh step (one in refresh_every) eigendecomposes the curvature with torch.linalg.eigh "
                  "(and svd for Nystrom), which on CUDA check cuSOLVER's status on the host; the other steps "
                  "do not synchronise")

    def __post_init__(self):
        if self.step_size is not None and not (self.step_size > 0 and math.isfinite(self.step_size)):
            raise ValueError(f"step_size must be > 0 and finite (or None for the default), got {self.step_size}")
        if self.rank is not None and self.rank < 1:
            raise ValueError(f"rank must be >= 1 (or None for the dense curvature), got {self.rank}")
        if self.curvature not in CURVATURES:
            raise ValueError(f"curvature must be one of {', '.join(CURVATURES)}, got {self.curvature!r}")
        if self.curvature == "learned" and self.rank is not None:
            raise ValueError(f"rank must be None with curvature='learned' (a learned head gives only the "
                             f"diagonal), got {self.rank}")
        if self.refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {self.refresh_every}")
        if not (self.floor >= 0 and math.isfinite(self.floor)):
            raise ValueError(f"floor must be >= 0 and finite, got {self.floor}")
        if not (self.damping > 0 and math.isfinite(self.damping)):
            raise ValueError(f"damping must be > 0 and finite (it bounds M by 1/(floor + damping)), "
                             f"got {self.damping}")
        # this instance's needs (the class needs nothing), and whether its chains share M
        self.requires = REQUIRES[self.curvature] + (("log_prob",) if self.adjust else ())
        self.chains_interact = self.shared

    @property
    def h(self) -> float:
        """The step in use: ``step_size``, or the default for ``adjust``."""
        return DEFAULT_STEP[bool(self.adjust)] if self.step_size is None else self.step_size

    @property
    def stationary_variance(self):
        """Its variance on N(mu, variance) in an axis-aligned Gaussian, as a function, where it is known:
        the target's own when adjusting; ULA's at the effective step h m / variance with exact dense or
        diagonal curvature (module docstring). None for an unadjusted Nystrom sketch, whose uncaptured
        directions depend on the draw."""
        if self.adjust:
            return lambda variance: variance
        if self.rank is not None:
            return None

        def ula(variance: float) -> float:
            m = 1 / (max(1 / variance, self.floor) + self.damping)
            return variance / (1 - self.h * m / (2 * variance))

        return ula

    def _refresh(self, oracle, x: torch.Tensor, generator: torch.Generator):
        if self.curvature == "learned":
            s, metric = learned_metric(oracle, x, self.floor, self.damping, self.shared)
        elif self.rank is None or self.rank >= x[0].numel():
            s, metric = dense_metric(oracle, x, self.floor, self.damping, self.shared)
        else:
            s, metric = nystrom_metric(oracle, x, self.rank, self.floor, self.damping, generator, self.shared)
        return s, metric, capped_fraction(metric, self.floor, self.damping)

    def init(self, x0: torch.Tensor, oracle, budget: float) -> LowRankState:
        if self.adjust:
            log_p, s = oracle.log_prob_and_score(x0)
            return LowRankState(x0, s, log_p, None, None, 0)
        return LowRankState(x0, None, None, None, None, 0)  # the first step refreshes, with the run's generator

    def step(self, state: LowRankState, oracle, generator: torch.Generator):
        if state.metric is None:  # the first step: M at the start (a Python None, not a tensor value)
            s, metric, capped = self._refresh(oracle, state.x, generator)
            s = s if state.score is None else state.score
            state = LowRankState(state.x, s, state.log_prob, metric, capped, state.k)
        x_new, s_new, log_p_new, acceptance = self._move(state, oracle, generator)
        k, metric, capped = state.k + 1, state.metric, state.capped
        if k % self.refresh_every == 0:  # a Python int: the schedule, not the data, decides
            s_refresh, metric, capped = self._refresh(oracle, x_new, generator)
            s_new = s_refresh if s_new is None else s_new  # adjusted: the score there is known already
        elif s_new is None:
            s_new = oracle.score(x_new)
        info = LowRankInfo(self.h, acceptance, state.metric.mean_scale(), state.capped)
        return LowRankState(x_new, s_new, log_p_new, metric, capped, k), info

    def _move(self, state: LowRankState, oracle, generator: torch.Generator):
        """(x, s(x) or None, log p(x) or None, min(1, a)) after the proposal, corrected when adjusting."""
        x, h, flat_x, flat_s = state.x, self.h, _flat(state.x), _flat(state.score)
        y = euler_maruyama(flat_x, flat_s, h, normal_like(flat_x, generator), state.metric)
        if not self.adjust:
            return y.reshape(x.shape), None, None, torch.ones(x.shape[0], device=x.device, dtype=x.dtype)
        log_p_y, s_y = oracle.log_prob_and_score(y.reshape(x.shape))
        moved = metropolis_hastings(flat_x, y, state.log_prob, log_p_y, flat_s, _flat(s_y), h, generator, state.metric)
        return moved.x.reshape(x.shape), moved.score.reshape(x.shape), moved.log_prob, moved.acceptance
