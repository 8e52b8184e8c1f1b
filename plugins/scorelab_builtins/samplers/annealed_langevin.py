"""``annealed_langevin``: Langevin dynamics over decreasing noise levels (NCSN), with a choice of
preconditioner and step rule at every level.

For sigma_1 > ... > sigma_L (geometric), T steps at each level of

    x <- x + h M s(x, sigma_i) + sqrt(2 h M) z,    z ~ N(0, I)

then, optionally, one denoising step x <- x + sigma_L^2 * s(x, sigma_L) (NCSNv2). Large noise levels
let chains cross between separated modes, so mode weights come out right where plain Langevin keeps
the weights of its starting points. Unless ``steps_per_level`` is set, the budget is split evenly
across levels. The chain finishes when the schedule ends.

The preconditioner M (diagonal, restarted at every level, since the noisy target changes):

- ``none``: M = I.
- ``rmsprop``: M = 1 / (damping + sqrt(V)), V a running average of s^2 within the level (as in
  ``rmsprop_langevin``, without the Gamma term; default damping 1e-5).
- ``hessian_diag``: M = 1 / (max(c, 0) + damping), c = -diag J of the noisy score from
  ``curvature`` (hutchinson / exact / learned), refreshed every ``refresh_every`` steps of the level
  and smoothed with ``ema`` (as in ``hessian_diag_langevin``; default damping 1e-2).

The step rule h:

- ``ncsn``: h = epsilon * sigma_i^2 / sigma_L^2 (Song & Ermon 2019; with M = I).
- ``constant``: h = epsilon at every level, for a preconditioner that already scales with the
  noise (with ``hessian_diag``, M grows like sigma^2 at large sigma).
- ``snr``: score_sde's Langevin corrector, h = 2 (snr |z| / |M^(1/2) s|)^2 with the norms averaged
  over chains (Song et al. 2021, ``LangevinCorrector``; snr = 0.16 for CIFAR-10), one h for all.
- ``secant`` / ``power``: h = step_scale / L per chain, L the curvature of the preconditioned
  score along the last move (|M^(1/2) ds| / |M^(-1/2) dx|), or from power iterations on
  M^(1/2) J M^(1/2) (JVPs), as in ``curvature_step_langevin``. The secant restarts nothing at a new
  level: it keeps its last L until the next move gives a fresh one, and the step bounds below catch
  the change of scale. The very first step uses the smallest allowed step.
- ``adaptive``: Euler–Maruyama vs Heun error control with per-chain accept/reject, as in
  ``adaptive_langevin`` (rejected chains stay put and keep their Brownian increment; 2 NFE a step).

For the per-chain rules (secant, power, adaptive) each chain's largest effective step h max(M) is
kept in [min_step, max_step] * sigma_i^2: the score of p convolved with N(0, sigma^2 I) has
curvature at most 1 / sigma^2, so steps up to 2 sigma^2 are stable whatever the data. The bounds
act on h, so drift and noise keep the same M. Raise ``max_step`` where the data are smooth on the
scale of sigma (a Gaussian of variance v >> sigma^2 is best sampled with steps ~ v, not sigma^2).

Cost per step: 1 NFE (``adaptive``: 2); a ``hessian_diag`` refresh costs ``probes`` VJPs instead of
the NFE (Hutchinson), or an extra CURV (exact), or nothing extra (learned); a ``power`` refresh
costs ``power_iterations`` JVPs instead of the NFE (and on top of a Hutchinson refresh when both
fall on one step). The denoising step 1 NFE. ``init`` costs nothing.

Known bias: every level is an unadjusted chain (ULA's bias at that level's step, see ``langevin``),
the schedule is finite, and the last level is the target blurred by sigma_L (the denoising step
trades the blur for a shrinkage).

References: Song & Ermon (2019), "Generative Modeling by Estimating Gradients of the Data
Distribution"; Song & Ermon (2020) for the denoising step; Song et al. (2021), score_sde
``sampling.py`` for the snr rule; the samplers named above for the other rules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch

from scorelab.schedules import geometric_sigmas

from ..kernels import BrownianMemory, DiagonalCurvature, euler_maruyama, normal_like
from ..kernels.curvature import REQUIRES
from ._annealed_levels import LevelPreconditioner, StepRule, effective_step


@dataclass
class AnnealedState:
    x: torch.Tensor
    k: int  # steps taken; the level is k // steps_per_level
    sigmas: list[float]
    steps_per_level: int
    finished: bool = False
    # carried within a level by the preconditioners and step rules that need them
    v: torch.Tensor | None = None  # rmsprop's running average of s^2
    diag: torch.Tensor | None = None  # hessian_diag's smoothed curvature
    prev_x: torch.Tensor | None = None  # secant: the last point and its score
    prev_score: torch.Tensor | None = None
    curvature: torch.Tensor | None = None  # secant/power: L per chain
    vector: torch.Tensor | None = None  # power: the current unit vector per chain
    step: torch.Tensor | None = None  # adaptive: h per chain
    memory: BrownianMemory | None = None  # adaptive: unused Brownian increments of rejected attempts


@dataclass
class AnnealedInfo:
    sigma: float
    step_size: float | torch.Tensor  # mean effective step h M
    accepted: float | torch.Tensor = 1.0  # per chain under ``adaptive``


@dataclass
class AnnealedLangevin:
    sigma_max: float = 10.0  # sigma_1, the first and largest noise level, in x's units
    sigma_min: float = 0.01  # sigma_L, the last and smallest noise level; 0 < sigma_min <= sigma_max
    levels: int = 10  # L, noise levels geometric from sigma_max to sigma_min (1: sigma_min only)
    epsilon: float = 2e-5  # ncsn: h = epsilon sigma_i^2 / sigma_L^2; constant: h = epsilon; unused by the other rules
    steps_per_level: int | None = None  # T per level; None: the budget (less the denoise NFE) split evenly over levels
    denoise: bool = True  # end with x <- x + sigma_L^2 s(x, sigma_L) (1 NFE)
    step_rule: Literal["ncsn", "constant", "snr", "secant", "power", "adaptive"] = "ncsn"  # rule for h (see docstring)
    snr: float = 0.16  # snr rule: h = 2 (snr |z| / |M^(1/2) s|)^2, norms averaged over chains; > 0
    step_scale: float = 0.5  # secant/power rules: h = step_scale / L, > 0 (< 2 is stable when L is right)
    power_iterations: int = 1  # power rule: JVPs of the power method on M^(1/2) J M^(1/2) per refresh, >= 1
    abs_tol: float = 0.0078  # adaptive rule: absolute floor of the error scale delta, in x's units, > 0
    rel_tol: float = 0.0  # adaptive rule: delta's part relative to max(|x|, |x_Heun|); 0 avoids its bias
    min_step: float = 1e-4  # secant/power/adaptive: least h max(M), in units of sigma_i^2
    max_step: float = 1.0  # secant/power/adaptive: largest h max(M), in units of sigma_i^2 (up to 2 is stable)
    preconditioner: Literal["none", "rmsprop", "hessian_diag"] = "none"  # diagonal M, restarted at every level
    curvature: Literal["hutchinson", "exact", "learned"] = "hutchinson"  # hessian_diag: source of c = -diag J
    probes: int = 1  # hessian_diag with hutchinson: Rademacher probes (VJPs) per refresh, >= 1
    refresh_every: int = 1  # steps of a level between hessian_diag or power refreshes (one at each level's start), >= 1
    ema: float = 0.0  # hessian_diag: weight of the old c across refreshes within a level, in [0, 1)
    alpha: float = 0.99  # rmsprop: weight of the old V in V <- alpha V + (1 - alpha) s^2, in [0, 1)
    damping: float | None = None  # added to M's denominator, > 0; None: 1e-5 for rmsprop, 1e-2 for hessian_diag

    requires = ("noise_conditional",)

    def __post_init__(self):
        # The snr rule takes one h from norms averaged over the chains, rmsprop starts V at their mean s^2.
        self.chains_interact = self.step_rule == "snr" or self.preconditioner == "rmsprop"
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError(f"need 0 < sigma_min <= sigma_max, got {self.sigma_min} and {self.sigma_max}")
        if self.levels < 1:
            raise ValueError(f"levels must be >= 1, got {self.levels}")
        if self.steps_per_level is not None and self.steps_per_level < 1:
            raise ValueError(f"steps_per_level must be >= 1, got {self.steps_per_level}")
        self._level_parts()  # each part checks its own fields
        if self.step_rule == "power" and self.preconditioner == "rmsprop":
            raise ValueError("step_rule 'power' cannot be combined with preconditioner 'rmsprop' (its M needs "
                             "the score the power iteration is computing); use 'secant'")
        extra = REQUIRES[self.curvature] if self.preconditioner == "hessian_diag" else ()
        self.requires = type(self).requires + extra

    @property
    def budget_bound(self) -> bool:
        """Its schedule is split from the budget (unless ``steps_per_level`` is set): a point on one run's
        curve is not what it needs at that cost, so comparisons find its cost to quality by a budget ladder."""
        return self.steps_per_level is None

    def check_run(self, chains: int, event_shape: tuple[int, ...], budget: float) -> None:
        """Refuses, before any run, a budget too small for one step per level (what ``init`` checks)."""
        self._steps_per_level(budget)

    def init(self, x0: torch.Tensor, oracle, budget: float) -> AnnealedState:
        T = self._steps_per_level(budget)
        return AnnealedState(x0, 0, geometric_sigmas(self.sigma_max, self.sigma_min, self.levels), T)

    def _steps_per_level(self, budget: float) -> int:
        """T, given or split from the budget (the adaptive rule pays two scores per step)."""
        if self.steps_per_level:
            return self.steps_per_level
        per_step = 2 if self.step_rule == "adaptive" else 1
        T = int((budget - self.denoise) // (self.levels * per_step))
        if T < 1:
            raise ValueError(f"a budget of {budget:g} is too small for {self.levels} levels of at least one "
                             f"step{' (two scores each, adaptive)' if per_step == 2 else ''}: raise 'budget' or "
                             "lower 'levels'")
        return T

    def _level_parts(self) -> tuple[LevelPreconditioner, StepRule]:
        curvature = DiagonalCurvature(self.curvature, self.probes, "vjp", self.refresh_every, self.ema)
        return (LevelPreconditioner(self.preconditioner, self.damping, self.alpha, curvature),
                StepRule(self.step_rule, self.epsilon, self.snr, self.step_scale, self.power_iterations,
                         self.refresh_every, self.abs_tol, self.rel_tol, self.min_step, self.max_step))

    def step(self, state: AnnealedState, oracle, generator: torch.Generator):
        level, j = divmod(state.k, state.steps_per_level)
        if level >= len(state.sigmas):  # the schedule is over: one denoising step, then done
            return self._denoise(state, oracle)
        x, sigma, new_level = state.x, state.sigmas[level], j == 0
        precondition, rule = self._level_parts()
        s, diag, m = precondition.before_score(oracle, x, sigma, state.diag, j, new_level, generator)
        s_power, lam, vector = rule.probe(oracle, x, sigma, j, m, state.curvature, state.vector)
        if s is None:
            s = s_power if s_power is not None else oracle.score(x, sigma)
        v, m = precondition.after_score(s, state.v, new_level, m)
        z = normal_like(x, generator)
        h, lo, lam = rule.step_size(state, s, m, z, sigma, new_level, lam)
        done = not self.denoise and state.k + 1 >= len(state.sigmas) * state.steps_per_level
        carried = dict(k=state.k + 1, finished=done, v=v, diag=diag, curvature=lam, vector=vector)
        if self.step_rule == "adaptive":
            x_new, accept, h_next, memory, eff = rule.adaptive_move(x, s, m, h, lo, state.memory,
                                                                    lambda y: oracle.score(y, sigma), generator)
            new = dataclasses.replace(state, x=x_new, step=h_next, memory=memory, **carried)
            return new, AnnealedInfo(sigma, eff.mean(), accept.to(x.dtype))
        eff = effective_step(h, m, x)
        new = dataclasses.replace(state, x=euler_maruyama(x, s, eff, z), prev_x=x, prev_score=s, **carried)
        return new, AnnealedInfo(sigma, eff if isinstance(eff, float) else eff.mean())

    def _denoise(self, state: AnnealedState, oracle):
        sigma_last = state.sigmas[-1]
        x = state.x + sigma_last**2 * oracle.score(state.x, sigma_last)
        return dataclasses.replace(state, x=x, k=state.k + 1, finished=True), AnnealedInfo(sigma_last, sigma_last**2)
