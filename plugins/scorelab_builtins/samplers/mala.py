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

with mu = log(10 h_0), t0 = 10, gamma = 0.05, kappa = 0.75 (``_dual_averaging``); afterwards h = hbar is frozen and the
chain is a valid MCMC kernel. The warm-up moves the chains too, and its cost counts like any other.
A proposal whose density is NaN or infinite is rejected, so a far too large step shows as zero
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

from . import _dual_averaging as dual_averaging
from ._curvature import batch_shape
from ._dual_averaging import GAMMA, KAPPA, T0, dual_averaging_update


@dataclass
class MalaState:
    x: torch.Tensor
    log_prob: torch.Tensor  # (n,)
    score: torch.Tensor
    log_step: torch.Tensor  # 0-dim: log of the step in use
    log_step_avg: torch.Tensor  # 0-dim: dual averaging's log hbar
    accept_error: torch.Tensor  # 0-dim: dual averaging's H, the averaged shortfall from the target acceptance
    k: int  # steps taken


@dataclass
class MalaInfo:
    step_size: torch.Tensor
    acceptance: torch.Tensor  # per chain: min(1, a)
    accepted: torch.Tensor  # per chain: 1 if the proposal was taken
    adapting: float  # 1 during warm-up


@dataclass
class Mala:
    step_size: float = 0.1  # h_0, the initial step (mu = log(10 h_0)); kept fixed when warmup = 0
    target_accept: float = 0.574  # mean acceptance over chains that dual averaging aims for, in (0, 1)
    warmup: int = 200  # steps of dual-averaging adaptation, then h = hbar frozen; 0 keeps step_size fixed (plain MALA)
    t0: float = T0  # t0 >= 0 in H_t's weight 1/(t + t0): larger damps the early iterations (default 10)
    gamma: float = GAMMA  # gamma > 0 in log h_t = mu - sqrt(t)/gamma H_t: smaller lets h move further (0.05)
    kappa: float = KAPPA  # kappa in (0.5, 1]: weight t^-kappa of log h_t in log hbar_t (default 0.75)

    name = "mala"
    requires = ("log_prob",)
    chains_interact = True  # during warm-up the step is adapted on the acceptance averaged over chains

    def __post_init__(self):
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0, got {self.step_size}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0 steps (0: keep step_size fixed), got {self.warmup}")
        dual_averaging.check_fields(self.target_accept, self.t0, self.gamma, self.kappa)

    def init(self, x0: torch.Tensor, oracle, budget: float) -> MalaState:
        log_p, s = oracle.log_prob_and_score(x0)
        log_h = torch.full((), math.log(self.step_size), dtype=x0.dtype, device=x0.device)
        return MalaState(x0, log_p, s, log_h, log_h.clone(), torch.zeros_like(log_h), 0)

    def step(self, state: MalaState, oracle, generator: torch.Generator):
        x, s, h = state.x, state.score, state.log_step.exp()
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        y = x + h * s + torch.sqrt(2 * h) * z
        log_p_y, s_y = oracle.log_prob_and_score(y)
        log_q_forward = -(y - x - h * s).flatten(1).square().sum(1) / (4 * h)
        log_q_backward = -(x - y - h * s_y).flatten(1).square().sum(1) / (4 * h)
        log_a = log_p_y - state.log_prob + log_q_backward - log_q_forward
        proper = torch.isfinite(log_p_y) & torch.isfinite(s_y).flatten(1).all(1)
        log_a = torch.where(proper, log_a, -math.inf).nan_to_num(nan=-math.inf)  # broken proposals: rejected
        u = torch.rand(log_a.shape, generator=generator, device=x.device, dtype=x.dtype)
        accept = torch.log(u) < log_a
        acceptance = log_a.clamp(max=0).exp()
        wide = accept.reshape(batch_shape(x))
        x_new = torch.where(wide, y, x)
        s_new = torch.where(wide, s_y, s)
        log_p_new = torch.where(accept, log_p_y, state.log_prob)

        k = state.k + 1
        log_h, log_h_avg, accept_error = state.log_step, state.log_step_avg, state.accept_error
        adapting = k <= self.warmup
        if adapting:  # a Python int: the schedule, not the data, decides
            log_h, log_h_avg, accept_error = dual_averaging_update(
                accept_error, log_h_avg, acceptance.mean(), k, mu=math.log(10 * self.step_size),
                target=self.target_accept, t0=self.t0, gamma=self.gamma, kappa=self.kappa)
            if k == self.warmup:
                log_h = log_h_avg  # frozen from here on
        info = MalaInfo(h, acceptance, accept.to(x.dtype), float(adapting))
        return MalaState(x_new, log_p_new, s_new, log_h, log_h_avg, accept_error, k), info
