"""``ensemble_langevin``: affine-invariant interacting Langevin (ALDI), the chains' spread as preconditioner.

With N chains x_1..x_N in d dimensions, their mean m and covariance C = (1/N) sum_j (x_j - m)(x_j - m)^T,
every chain follows

    dx_i = C s(x_i) dt + (d + 1)/N (x_i - m) dt + sqrt(2) C^(1/2) dW_i

discretised by Euler–Maruyama with step h, C recomputed from the current chains every step:

    x_i <- x_i + h C_j s(x_i) + h (d + 1)/N (x_i - m) + sqrt(2h) L z_i,    z_i ~ N(0, I)

with C_j = C + jitter I = L L^T (L its Cholesky factor). ``covariance: diagonal`` keeps only the
diagonal of C; then the middle term is h 2/N (x_i - m) and L = diag(C_j)^(1/2). ``correction: false``
drops the middle term: the ensemble Kalman sampler (EKS) of Garbuno-Inigo, Hoffmann, Li & Stuart.

Invariance. Stack the chains into X = (x_1, ..., x_N) and let D(X) = diag(C_j, ..., C_j), one block
per chain. The dynamics is dX = [D grad log Pi + div D] dt + sqrt(2) D^(1/2) dW for the product
Pi = p x ... x p, because the divergence of D taken over chain i's block is the middle term:
sum_l d C_kl / d x_i^l = (1/N) sum_l [delta_kl (x_i - m)_l + (x_i - m)_k] = (d + 1)/N (x_i - m)_k (for
the diagonal, d C_kk / d x_i^k = 2/N (x_i - m)_k; jitter I has none). Its generator is
Lf = Pi^-1 div(Pi D grad f), so the integral of Lf against Pi is zero for every f: Pi is invariant for
every finite N (and the dynamics reversible; the Euler–Maruyama step adds the bias below), whichever
root L L^T = C_j the noise uses, as the generator sees only D. Without the middle term the ensemble
is too narrow at finite N: on N(0, I) (any Gaussian, whitened), Ito's formula for
sum_i |x_i - m|^2 = N tr C gives at stationarity

    N E tr C^2 = (N - 1 + c N) E tr C,    c = (d + 1)/N with the term, 0 without,

which with the term is the identity the exact law satisfies (N C ~ Wishart_d(N - 1, I)), and without
it forces E tr C <= d (N - 1)/N, the exact value, strictly below it whenever C fluctuates (Jensen:
tr C^2 >= (tr C)^2 / d); about (N - 1)/(N + d) of it when C fluctuates as a Wishart matrix does.
Without jitter, and N <= d + 1, the chains never leave the affine hull of where they started;
jitter restores ergodicity at the cost of exact affine invariance.

Affine invariance. Under y = A x + b the score becomes A^-T s, the covariance A C A^T and the
middle term A (d + 1)/N (x_i - m): the drift maps to A times the drift and the noise's covariance
to A C A^T, so each step's law maps exactly, for every invertible A (at jitter = 0). With the
Cholesky root a step maps path by path, draw for draw, whenever A is lower triangular with a
positive diagonal (the Cholesky factor of A C A^T is A L), a family that holds a whitening map of
every Gaussian. (The diagonal variant: A diagonal.)

Cost per step: 1 NFE (the score at the new point is kept); ``init`` 1 NFE. C, its Cholesky factor
(in float64; ``torch.linalg.cholesky_ex``, which does not synchronise) and the products with it
cost O(N d^2 + d^3) and no score evaluation. A failed factorisation makes the chains NaN (the
runner records a divergence), never silently wrong. Chains are coupled: one chain's NaN is everyone's.

Known bias. On N(mu, Sigma) with N large the chains settle at a covariance V with C = V. In Sigma's
whitened frame, with W = Sigma^-1/2 V Sigma^-1/2, a step is u <- (I - h W) u + sqrt(2h) W^(1/2) z, so
W = (I - h W) W (I - h W) + 2h W, i.e. h W^2 - 2 W + 2 = 0 and

    V = Sigma * 2 / (1 + sqrt(1 - 2h)) = Sigma (1 + h/2 + h^2/2 + ...)

(ULA with the fixed preconditioner Sigma gives Sigma / (1 - h/2), which agrees to first order: C
follows the spread, and the spread the step). The mean is unbiased. For h < 1/2 this fixed point
attracts (the covariance contracts towards it by 3 - 4h - 2 sqrt(1 - 2h) per step, (1 - h)^2 for small h);
for h >= 1/2 there is none, and the spread grows without bound. Stability needs h lambda_max(C
Sigma^-1) < 2 at every step, so an ensemble that starts much wider than the target along a stiff
direction needs h below 2 Sigma_min / C_0 until it has contracted: the step is set by the start,
not by the target (on the rotated d = 50, condition number 1000 Gaussian, 4000 chains from N(2, 3^2)
per coordinate: h = 2e-4 at most, then 13,750 steps until every whitened mean and variance is within
10 %, against plain Langevin's 16,642 at its best step; ``ensemble_mala`` adapts its step instead).
At finite N there are further O(h / N) terms, not derived here (N = 20, d = 5, h = 0.05: a measured
spread of 1.01 to 1.02 times Sigma where the formula gives 1.026), and on a non-Gaussian target an
O(h) bias of ULA's kind.

References: Garbuno-Inigo, Hoffmann, Li & Stuart (2020), "Interacting Langevin diffusions: gradient
structure and ensemble Kalman sampler", SIAM J. Appl. Dyn. Syst. 19; Garbuno-Inigo, Nüsken & Reich
(2020), "Affine invariant interacting Langevin dynamics for Bayesian inference", SIAM J. Appl. Dyn.
Syst. 19 (the (d + 1)/N correction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from scorelab.contracts import DrawsFirst

from ..kernels import ensemble_metric, euler_maruyama, normal_draws, normal_from
from ..kernels.ensemble import check_ensemble_fields, check_ensemble_size


@dataclass
class EnsembleLangevinState:
    x: torch.Tensor
    score: torch.Tensor


@dataclass
class EnsembleLangevinInfo:
    step_size: float
    preconditioner: torch.Tensor  # tr(C + jitter I) / d: the ensemble's mean variance


@dataclass
class EnsembleLangevin(DrawsFirst):
    step_size: float = 0.1  # h, in the ensemble's whitened frame: stable for h < 1/2 once C is the spread
    covariance: Literal["dense", "diagonal"] = "dense"  # C in full (affine invariant) or its diagonal only
    jitter: float = 1e-6  # added to C times I, in units of x^2; keep it well under the target's smallest variance
    correction: bool = True  # the (d + 1)/N term that makes the product invariant at finite N

    name = "ensemble_langevin"
    requires = ()
    # The kit's 100-D check runs 100 chains (N = d: C is singular, one direction moves only by jitter).
    example_params = {"jitter": 0.01}
    chains_interact = True  # every chain moves with the covariance of all of them
    keyed_rng = True  # draws with normal_draws

    def __post_init__(self):
        if not 0 < self.step_size < 0.5:
            raise ValueError(f"step_size must be in (0, 0.5): the spread grows without bound for h >= 1/2, "
                             f"got {self.step_size}")
        check_ensemble_fields(self.covariance, self.jitter)

    def stationary_variance(self, variance: float) -> float:
        """On N(mu, variance) with many chains: the self-consistent fixed point of the module docstring."""
        return variance * 2 / (1 + math.sqrt(1 - 2 * self.step_size))

    def check_run(self, chains: int, event_shape: tuple[int, ...], budget: float) -> None:
        """Refuses, before any run, an ensemble too small for its covariance (what ``init`` checks)."""
        check_ensemble_size(chains, math.prod(event_shape), self.covariance, self.jitter)

    def init(self, x0: torch.Tensor, oracle, budget: float) -> EnsembleLangevinState:
        check_ensemble_size(len(x0), x0[0].numel(), self.covariance, self.jitter)
        return EnsembleLangevinState(x0, oracle.score(x0))

    def draw(self, state: EnsembleLangevinState, generator: torch.Generator) -> torch.Tensor:
        return normal_draws(state.x.flatten(1), generator)

    def advance(self, state: EnsembleLangevinState, oracle, draws: torch.Tensor):
        h, x = self.step_size, state.x.flatten(1)
        n, d = x.shape
        centred, metric = ensemble_metric(x, self.covariance, self.jitter)
        y = euler_maruyama(x, state.score.flatten(1), h, normal_from(draws, x), metric)
        if self.correction:  # the divergence of C with respect to x_i
            y = y + (h * ((d + 1) if self.covariance == "dense" else 2) / n) * centred
        y = y.reshape(state.x.shape)
        return EnsembleLangevinState(y, oracle.score(y)), EnsembleLangevinInfo(h, metric.mean_scale())
