"""``curvature_step_langevin``: ULA whose per-chain step is set by a local curvature estimate.

    h = clip(step_scale / L, min_step, max_step),    x <- x + h s(x) + sqrt(2h) z

with L an estimate, per chain, of the largest curvature |lambda_max(J)| of log p (J the score
Jacobian), from one of two methods:

- ``secant`` (Barzilai–Borwein style, free): L = |s(x') - s(x)| / |x' - x| along the chain's own
  last move. For a Gaussian target it lies between the smallest and largest eigenvalue of the
  precision, weighted by where the move went; on an isotropic Gaussian it is exact. The first step
  has no secant yet and uses ``min_step``.
- ``power``: ``power_iterations`` steps of the power method on J (one JVP each, warm-started from
  the previous vector, so one iteration a refresh usually suffices), refreshed every
  ``refresh_every`` steps. The JVP returns the score too, so a refresh step costs its JVPs and no
  NFE. The first vector is (1, ..., 1) / sqrt(d).

ULA is stable on N(mu, Sigma) for h < 2 / lambda_max(Sigma^-1), so step_scale < 2 keeps it stable
when L is right; 0.5 leaves room for an underestimate.

Cost per step: 1 NFE (secant, or a power step without refresh); a refresh step ``power_iterations``
JVPs. ``init``: 1 NFE (secant) or ``power_iterations`` JVPs (power).

Known bias. ULA's: at a fixed step h, coordinate variance v becomes v / (1 - h / (2v)) along each
eigen-direction. With ``power`` on a Gaussian, L converges to lambda_max and the step to
step_scale / lambda_max, a fixed step with exactly that bias. With ``secant`` the step varies
with the chain's own noise (except on an isotropic Gaussian, where it is fixed at step_scale * v),
so the bias lies between ULA's at the smallest and at the largest step taken.

References: J. Barzilai & J. M. Borwein (1988), "Two-point step size gradient methods", IMA J.
Numer. Anal. 8; power iteration for the largest Hessian eigenvalue as in Yao et al. (2020),
"PyHessian".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from scorelab.contracts import DrawsFirst

from ..kernels import (
    batch_shape,
    euler_maruyama,
    normal_draws,
    normal_from,
    power_curvature,
    power_start,
    secant_curvature,
)


@dataclass
class CurvatureStepState:
    x: torch.Tensor
    score: torch.Tensor
    curvature: torch.Tensor  # L per chain, shaped (n, 1, ..., 1)
    vector: torch.Tensor | None  # power method's current unit vector per chain
    k: int


@dataclass
class CurvatureStepInfo:
    step_size: torch.Tensor  # per chain
    curvature: torch.Tensor  # per chain: the L that set this step


@dataclass
class CurvatureStepLangevin(DrawsFirst):
    method: Literal["secant", "power"] = "secant"  # L from the last move, |ds|/|dx| (free), or power iterations on J
    step_scale: float = 0.5  # h = step_scale / L before clipping, > 0; < 2 is stable when L is right
    min_step: float = 1e-6  # least h, > 0; also the first secant step (no move yet)
    max_step: float = 1.0  # largest h, >= min_step
    power_iterations: int = 1  # power: JVPs per refresh (and in init), warm-started from the last vector, >= 1
    refresh_every: int = 10  # power: steps between refreshes of L (held in between), >= 1; secant updates every step

    name = "curvature_step_langevin"
    # The bias depends on the whole target (L is a largest curvature, not a per-coordinate one), so none is
    # declared; a small step_scale keeps it within the kit's allowance.
    example_params = {"step_scale": 0.05}
    keyed_rng = True  # draws with normal_draws

    def __post_init__(self):
        if self.method not in ("secant", "power"):
            raise ValueError(f"method must be 'secant' or 'power', got {self.method!r}")
        if not self.step_scale > 0:
            raise ValueError(f"step_scale must be > 0 (ULA is stable for step_scale < 2), got {self.step_scale}")
        if not 0 < self.min_step <= self.max_step:
            raise ValueError(f"need 0 < min_step <= max_step, got {self.min_step} and {self.max_step}")
        if self.power_iterations < 1:
            raise ValueError(f"power_iterations must be >= 1, got {self.power_iterations}")
        if self.refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {self.refresh_every}")

    def init(self, x0: torch.Tensor, oracle, budget: float) -> CurvatureStepState:
        if self.method == "secant":
            first = torch.full(batch_shape(x0), self.step_scale / self.min_step, dtype=x0.dtype, device=x0.device)
            return CurvatureStepState(x0, oracle.score(x0), first, None, 0)
        s, lam, v = power_curvature(oracle, x0, power_start(x0), self.power_iterations)
        return CurvatureStepState(x0, s, lam, v, 0)

    def draw(self, state: CurvatureStepState, generator: torch.Generator) -> torch.Tensor:
        return normal_draws(state.x, generator)

    def advance(self, state: CurvatureStepState, oracle, draws: torch.Tensor):
        h = (self.step_scale / state.curvature).clamp(self.min_step, self.max_step)
        x = euler_maruyama(state.x, state.score, h, normal_from(draws, state.x))
        k, v, curvature = state.k + 1, state.vector, state.curvature
        if self.method == "secant":
            s = oracle.score(x)
            curvature = secant_curvature(x - state.x, s - state.score, state.curvature)
        elif k % self.refresh_every == 0:
            s, curvature, v = power_curvature(oracle, x, v, self.power_iterations)
        else:
            s = oracle.score(x)
        return CurvatureStepState(x, s, curvature, v, k), CurvatureStepInfo(h.flatten(), state.curvature.flatten())
