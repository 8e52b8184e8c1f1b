"""``mala``: Metropolis-adjusted Langevin, step size tuned by dual averaging during a warm-up.

Propose a Langevin step and accept it with the Metropolis–Hastings probability, which makes the
target exactly invariant (no discretisation bias):

    y = x + h s(x) + sqrt(2h) z,    z ~ N(0, I)
    log a = log p(y) - log p(x) + log q(x | y) - log q(y | x),    log q(b | a) = -|b - a - h s(a)|^2 / (4h)
    x <- y with probability min(1, a), else x stays

During the first ``warmup`` steps the step size (one for all chains) is adapted by dual averaging
(Hoffman & Gelman 2014, Algorithm 5) so that the mean acceptance probability over chains reaches
``target_accept`` (0.574, optimal for MALA on Gaussian-like targets as d -> infinity, Roberts &
Rosenthal 1998): with t the warm-up step, a_t the mean acceptance,

    H_t = (1 - 1/(t + t0)) H_{t-1} + (target - a_t) / (t + t0)
    log h_t = mu - sqrt(t) / gamma * H_t,    log hbar_t = t^-kappa log h_t + (1 - t^-kappa) log hbar_{t-1}

with mu = log(10 h_0), t0 = 10, gamma = 0.05, kappa = 0.75 (``kernels.dual_averaging``); afterwards
h = hbar is frozen and the chain is a valid MCMC kernel. The warm-up moves the chains too, and its
cost counts like any other. With ``warmup: 0`` nothing is adapted: this is plain MALA with the fixed
step ``step_size``, an exact MCMC kernel from the first step (and its chains do not interact). A
proposal whose density is NaN or infinite is rejected, so a far too large step shows as zero
acceptance, not as a divergence.

Cost per step: 1 NFE (log p and s at the proposal come from one evaluation); ``init`` 1 NFE.

References: Roberts & Tweedie (1996), "Exponential convergence of Langevin distributions and their
discrete approximations"; Hoffman & Gelman (2014), "The No-U-Turn Sampler", JMLR 15 (dual averaging);
BlackJAX ``mcmc/mala.py`` and ``adaptation/step_size.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from scorelab.contracts import DrawsFirst

from ..kernels import (
    DualAveraging,
    DualAveragingState,
    MetropolisInfo,
    euler_maruyama,
    metropolis_hastings,
    normal_draws,
    normal_from,
    uniform_per_chain,
)
from ..kernels.dual_averaging import GAMMA, KAPPA, T0


@dataclass
class MalaState:
    x: torch.Tensor
    log_prob: torch.Tensor  # (n,)
    score: torch.Tensor
    adaptation: DualAveragingState  # the step: log h in use, and dual averaging's running quantities
    k: int  # steps taken


@dataclass
class MalaInfo(MetropolisInfo):
    """MALA's per-step diagnostics: the step, acceptance and accepted per chain, adapting."""


@dataclass
class Mala(DrawsFirst):
    step_size: float = 0.1  # h_0, the initial step (mu = log(10 h_0)); kept fixed when warmup = 0
    target_accept: float = 0.574  # mean acceptance over chains that dual averaging aims for, in (0, 1)
    warmup: int = 200  # steps of dual-averaging adaptation, then h = hbar frozen; 0 keeps step_size fixed (plain MALA)
    t0: float = T0  # t0 >= 0 in H_t's weight 1/(t + t0): larger damps the early iterations (default 10)
    gamma: float = GAMMA  # gamma > 0 in log h_t = mu - sqrt(t)/gamma H_t: smaller lets h move further (0.05)
    kappa: float = KAPPA  # kappa in (0.5, 1]: weight t^-kappa of log h_t in log hbar_t (default 0.75)

    name = "mala"
    requires = ("log_prob",)
    chains_interact = True  # during warm-up the step is adapted on the acceptance averaged over chains
    keyed_rng = True  # draws with normal_draws and uniform_per_chain

    def __post_init__(self):
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0, got {self.step_size}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0 steps (0: keep step_size fixed), got {self.warmup}")
        self._adaptation()  # checks target_accept, t0, gamma, kappa
        self.chains_interact = self.warmup > 0  # plain MALA (no warm-up) moves each chain on its own

    def _adaptation(self) -> DualAveraging:
        return DualAveraging(self.target_accept, self.t0, self.gamma, self.kappa)

    def init(self, x0: torch.Tensor, oracle, budget: float) -> MalaState:
        log_p, s = oracle.log_prob_and_score(x0)
        log_h = torch.full((), math.log(self.step_size), dtype=x0.dtype, device=x0.device)
        return MalaState(x0, log_p, s, self._adaptation().init(log_h, mu=math.log(10 * self.step_size)), 0)

    def draw(self, state: MalaState, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return normal_draws(state.x, generator), uniform_per_chain(state.x, generator)

    def advance(self, state: MalaState, oracle, draws: tuple[torch.Tensor, torch.Tensor]):
        h = state.adaptation.log_step.exp()
        z, u = normal_from(draws[0], state.x), draws[1]
        y = euler_maruyama(state.x, state.score, h, z)
        log_p_y, s_y = oracle.log_prob_and_score(y)
        moved = metropolis_hastings(state.x, y, state.log_prob, log_p_y, state.score, s_y, h, None, u=u)
        k = state.k + 1
        adaptation, adapting = self._adaptation().warmup(state.adaptation, moved.acceptance.mean(), k, self.warmup)
        info = MalaInfo(h, moved.acceptance, moved.accepted.to(y.dtype), float(adapting))
        return MalaState(moved.x, moved.log_prob, moved.score, adaptation, k), info
